//! Streams a large file through `FileSystemStorage` and reports throughput and peak memory.
//!
//! Run with: cargo bench -p storage-core --bench filesystem_stream
//! Size in MiB from `BENCH_SIZE_MIB` (default 1024); directory from `BENCH_DIR` (default a
//! temporary directory). Peak RSS is the process's high-water mark (`VmHWM`), so it covers
//! everything the write and the read held at once.
#![allow(clippy::print_stdout, missing_docs)]

use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use storage_core::{ByteStream, Error, FileSystemStorage, Result, Storage, StorageExt};

const MIB: u64 = 1 << 20;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn chunk(i: u64) -> Bytes {
    Bytes::from(vec![(i % 251) as u8; 1 << 20])
}

#[tokio::main]
async fn main() -> Result<()> {
    let size_mib: u64 = std::env::var("BENCH_SIZE_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let temp = tempfile::tempdir().map_err(|e| Error::backend("bench", "tempdir", e))?;
    let dir = std::env::var("BENCH_DIR").map_or_else(|_| temp.path().to_owned(), Into::into);
    let storage = FileSystemStorage::new(&dir)?;
    let baseline = peak_rss_kib().unwrap_or(0);

    let stream: ByteStream = Box::pin(futures::stream::iter(0..size_mib).map(|i| Ok(chunk(i))));
    let started = Instant::now();
    let meta = storage.save("bench/large.bin", stream).await?;
    let write = started.elapsed();
    assert_eq!(meta.size, size_mib * MIB);

    let started = Instant::now();
    let mut opened = storage.open(&meta.name, None).await?;
    let mut read = 0u64;
    while let Some(bytes) = opened.stream.try_next().await? {
        read += bytes.len() as u64;
    }
    let read_time = started.elapsed();
    assert_eq!(read, meta.size);
    let peak = peak_rss_kib().unwrap_or(0);

    let mb = (size_mib * MIB) as f64 / 1e6;
    println!("filesystem_stream: {size_mib} MiB");
    println!(
        "  write (save, fsync, publish): {:>8.1} MB/s  ({:.2} s)",
        mb / write.as_secs_f64(),
        write.as_secs_f64()
    );
    println!(
        "  read  (open, stream to end):  {:>8.1} MB/s  ({:.2} s)",
        mb / read_time.as_secs_f64(),
        read_time.as_secs_f64()
    );
    println!(
        "  peak RSS: {:.1} MiB (baseline before the transfer {:.1} MiB)",
        peak as f64 / 1024.0,
        baseline as f64 / 1024.0
    );
    storage.delete(&meta.name).await?;
    Ok(())
}
