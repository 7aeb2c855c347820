//! Maintenance: copy every file from one storage to another with checksums verified, skipping
//! files already there and identical, so a run cut short can simply be run again. `dbfiles
//! load`, `dump` and `migrate-layout` are this one operation between different storages;
//! `rehash` re-reads stored files and compares them with their recorded checksums.

use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use storage_core::{
    ContentHasher, Error, FileMeta, Name, PutOptions, Result, Storage, StorageExt, Visibility,
};

/// Most files one command walks.
const MAX_FILES: usize = 10_000_000;

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Files written.
    pub copied: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files already at the destination with the same checksum.
    pub unchanged: u64,
    /// Files that failed (each reported on stderr).
    pub failed: u64,
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} copied ({} bytes), {} unchanged, {} failed",
            self.copied, self.bytes, self.unchanged, self.failed
        )
    }
}

/// Every stored name, sorted; more than the commands handle is an error, never a partial run.
pub async fn all_names(storage: &dyn Storage) -> Result<Vec<Name>> {
    storage.all_names(MAX_FILES).await
}

/// A progress bar on a terminal, nothing otherwise.
pub fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} files {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The SHA-256 of a stored file: the recorded one, else computed by reading it.
async fn checksum(storage: &dyn Storage, meta: &FileMeta) -> Result<[u8; 32]> {
    if let Some(sha256) = meta.sha256 {
        return Ok(sha256);
    }
    rehash_one(storage, &meta.name).await
}

/// Reads a stored file to its end and returns the SHA-256 of what was read.
pub async fn rehash_one(storage: &dyn Storage, name: &Name) -> Result<[u8; 32]> {
    let mut opened = storage.open(name, None).await?;
    let mut hasher = ContentHasher::new();
    while let Some(chunk) = opened.stream.next().await {
        hasher.update(&chunk?);
    }
    Ok(hasher.finish().0)
}

/// Copies one file unless the destination already has it with the same checksum. Returns the
/// bytes written (`None` when unchanged).
async fn copy_one(from: &dyn Storage, to: &dyn Storage, name: &Name) -> Result<Option<u64>> {
    let source = from.metadata(name).await?;
    if let Ok(existing) = to.metadata(name).await {
        if existing.size == source.size
            && checksum(to, &existing).await? == checksum(from, &source).await?
        {
            return Ok(None);
        }
    }
    // Keep the source's visibility where both sides can; otherwise the destination's default,
    // or public where the destination cannot keep private files.
    let visibility = if !to.capabilities().private_files {
        Visibility::Public
    } else if from.capabilities().private_files {
        source.visibility
    } else {
        to.default_visibility()
    };
    let mut options = PutOptions::new().visibility(visibility);
    options.content_type = source.content_type.clone();
    let opened = from.open(name, None).await?;
    let written = to.put_overwrite(name, opened.stream, &options).await?;
    // The destination hashed what it received; it must be what the source recorded.
    if let (Some(expected), Some(got)) = (opened.meta.sha256, written.sha256) {
        if expected != got {
            return Err(Error::backend(
                "copy",
                format!("checksum mismatch for '{name}': the stored file does not match its recorded checksum"),
                std::io::Error::from(std::io::ErrorKind::InvalidData),
            ));
        }
    }
    Ok(Some(written.size))
}

/// Copies every file of `from` into `to` (see the module docs), reporting failures per file on
/// stderr and going on.
#[allow(clippy::print_stderr)]
pub async fn copy_all(from: &dyn Storage, to: &dyn Storage, what: &str) -> Result<CopyReport> {
    let names = all_names(from).await?;
    let bar = progress(names.len() as u64, what);
    let mut report = CopyReport::default();
    for name in &names {
        match copy_one(from, to, name).await {
            Ok(Some(bytes)) => {
                report.copied += 1;
                report.bytes += bytes;
            }
            Ok(None) => report.unchanged += 1,
            Err(e) => {
                report.failed += 1;
                bar.suspend(|| eprintln!("dbfiles: {name}: {e}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(report)
}

/// What a rehash found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RehashReport {
    /// Files read.
    pub checked: u64,
    /// Files whose content no longer matches their recorded checksum.
    pub mismatched: Vec<Name>,
    /// Files with no recorded checksum (the filesystem keeps none).
    pub unrecorded: u64,
}

/// Re-reads `names` (every file when empty) and compares each with its recorded checksum.
pub async fn rehash(storage: &dyn Storage, names: Vec<Name>) -> Result<RehashReport> {
    let names = if names.is_empty() {
        all_names(storage).await?
    } else {
        names
    };
    let bar = progress(names.len() as u64, "rehash");
    let mut report = RehashReport::default();
    for name in names {
        let meta = storage.metadata(&name).await?;
        let actual = rehash_one(storage, &name).await?;
        report.checked += 1;
        match meta.sha256 {
            Some(recorded) if recorded != actual => report.mismatched.push(name),
            Some(_) => {}
            None => report.unrecorded += 1,
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Says on stderr which entries of the directory `load` reads from cannot be taken as stored
/// names (see `FileSystemStorage::unlistable_entries`: the storage's walk passes over them, so
/// without this a load would look complete while leaving them behind); returns how many, for
/// the failure count.
#[allow(clippy::print_stderr)]
pub async fn report_unloadable(source: &storage_core::FileSystemStorage) -> Result<u64> {
    let refused = source.unlistable_entries().await?;
    for (path, reason) in &refused {
        eprintln!("dbfiles: {}: not loaded: {reason}", path.display());
    }
    Ok(refused.len() as u64)
}
