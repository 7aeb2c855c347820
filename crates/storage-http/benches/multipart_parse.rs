//! Parses one large multipart upload through `save_multipart` into an `InMemoryStorage` and
//! reports throughput: multer's parsing, the part-header budget, type sniffing and hashing,
//! without a backend's own cost.
//!
//! Run with: cargo bench -p storage-http --bench multipart_parse
//! Size in MiB from `BENCH_SIZE_MIB` (default 256); the body arrives in 64 KiB chunks; the best
//! of 5 runs is reported.
#![allow(clippy::print_stdout, missing_docs)]

use std::time::Instant;

use bytes::Bytes;
use storage_core::{Error, InMemoryStorage, Result};
use storage_http::{save_multipart, UploadPolicy};

const BOUNDARY: &str = "bench-boundary-0123456789";
const CHUNK: usize = 64 * 1024;

#[tokio::main]
async fn main() -> Result<()> {
    let size_mib: usize = std::env::var("BENCH_SIZE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let size = size_mib << 20;
    let head = Bytes::from(format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    ));
    let tail = Bytes::from(format!("\r\n--{BOUNDARY}--\r\n"));
    // Content with no delimiter in it, shared by every chunk.
    let pattern = Bytes::from((0..=250u8).cycle().take(CHUNK).collect::<Vec<u8>>());
    let policy = UploadPolicy::new()
        .max_file_size(size as u64 + 1)
        .max_request_size(size as u64 + 4096);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let body = std::iter::once(head.clone())
            .chain((0..size / CHUNK).map(|_| pattern.clone()))
            .chain(std::iter::once(tail.clone()))
            .map(Ok::<_, std::io::Error>);
        let storage = InMemoryStorage::new();
        let started = Instant::now();
        let upload = save_multipart(
            &storage,
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            futures::stream::iter(body.collect::<Vec<_>>()),
            &policy,
        )
        .await?;
        best = best.min(started.elapsed().as_secs_f64());
        let stored = upload.files.first().map(|f| f.meta.size);
        if stored != Some((size / CHUNK * CHUNK) as u64) {
            return Err(Error::backend(
                "bench",
                "wrong size stored",
                std::io::Error::other(format!("{stored:?}")),
            ));
        }
    }
    println!(
        "multipart_parse: {size_mib} MiB in 64 KiB chunks, best of 5: {best:.3} s, {:.0} MiB/s",
        size_mib as f64 / best
    );
    Ok(())
}
