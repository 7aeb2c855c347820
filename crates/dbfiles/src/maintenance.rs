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

/// The entries under a directory that `load` cannot take as stored names, each with the
/// reason: names that are not UTF-8, or that the name rules refuse (control characters, more
/// than 1024 bytes, a backslash, which would be read as a `/`). The storage's own walk passes
/// over them, so without this a load would look complete while leaving them behind. Links are
/// followed as the storage's listing follows them, and a dangling one is named too; the staging
/// directory is not looked into.
pub fn unloadable_entries(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut refused = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    // Each directory once, so a link back up the tree cannot make the walk endless.
    let mut seen = std::collections::HashSet::new();
    while let Some((path, prefix)) = pending.pop() {
        if !seen.insert(std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone())) {
            continue;
        }
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) => {
                refused.push((path, format!("cannot be read: {e}")));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    refused.push((path.clone(), format!("an entry cannot be read: {e}")));
                    continue;
                }
            };
            let path = entry.path();
            // Links followed, as the storage's own listing does.
            let is_dir = match std::fs::metadata(&path) {
                Ok(meta) => meta.is_dir(),
                Err(e) => {
                    refused.push((path, format!("cannot be read (a dangling link?): {e}")));
                    continue;
                }
            };
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                refused.push((path, "the name is not UTF-8".to_owned()));
                continue;
            };
            if prefix.is_empty() && file_name == storage_core::STAGING_DIR {
                continue;
            }
            let name = format!("{prefix}{file_name}");
            if file_name.contains('\\') {
                refused.push((path, "the name holds a backslash".to_owned()));
                continue;
            }
            if let Err(e) = Name::new(&name) {
                refused.push((path, e.to_string()));
                continue;
            }
            if is_dir {
                pending.push((path, format!("{name}/")));
            }
        }
    }
    refused.sort();
    refused
}

/// Says on stderr which entries under `dir` `load` cannot take (see [`unloadable_entries`]);
/// returns how many, for the failure count.
#[allow(clippy::print_stderr)]
pub fn report_unloadable(dir: &std::path::Path) -> u64 {
    let refused = unloadable_entries(dir);
    for (path, reason) in &refused {
        eprintln!("dbfiles: {}: not loaded: {reason}", path.display());
    }
    refused.len() as u64
}
