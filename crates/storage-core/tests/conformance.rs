//! The whole conformance suite on both backends of this crate, directly and through
//! `Arc<dyn Storage>`.

use std::sync::Arc;

use storage_core::{FileSystemStorage, InMemoryStorage, Result, Storage};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_storage_passes_the_suite() -> Result<()> {
    storage_conformance::run_all(&InMemoryStorage::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_storage_passes_through_arc_dyn() -> Result<()> {
    let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
    storage_conformance::run_all_shared(storage).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filesystem_storage_passes_the_suite() -> Result<()> {
    let dir =
        tempfile::tempdir().map_err(|e| storage_core::Error::backend("test", "tempdir", e))?;
    storage_conformance::run_all(&FileSystemStorage::new(dir.path())?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filesystem_storage_passes_through_arc_dyn() -> Result<()> {
    let dir =
        tempfile::tempdir().map_err(|e| storage_core::Error::backend("test", "tempdir", e))?;
    let storage: Arc<dyn Storage> = Arc::new(FileSystemStorage::new(dir.path())?.with_sync(false));
    storage_conformance::run_all_shared(storage).await
}
