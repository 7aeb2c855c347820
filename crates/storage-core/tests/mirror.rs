//! The disk mirror: exported on save, refreshed on read when the checksum changes, never
//! outside the media root, never for private files; an empty or missing media root is refused.

use std::sync::Arc;

use storage_core::{
    Error, InMemoryStorage, MirroredStorage, Name, Result, SaveOptions, Storage, StorageExt,
    Visibility,
};

fn io(e: std::io::Error) -> Error {
    Error::backend("test", "io", e)
}

fn public_memory() -> Arc<InMemoryStorage> {
    Arc::new(InMemoryStorage::new().with_default_visibility(Visibility::Public))
}

fn mirror(root: &std::path::Path) -> Result<MirroredStorage<Arc<InMemoryStorage>>> {
    MirroredStorage::new(public_memory(), root)
}

#[tokio::test]
async fn saves_are_exported_with_a_hash_file() -> Result<()> {
    let root = tempfile::tempdir().map_err(io)?;
    let storage = mirror(root.path())?;
    let meta = storage.save("docs/résumé 2024.pdf", "%PDF-1.7").await?;
    let file = root.path().join("docs/résumé_2024.pdf");
    assert_eq!(std::fs::read(&file).map_err(io)?, b"%PDF-1.7");
    let hash =
        std::fs::read_to_string(root.path().join("docs/résumé_2024.pdf.hash")).map_err(io)?;
    assert_eq!(Some(hash), meta.sha256_hex());
    assert!(storage.is_fresh(&meta).await);
    assert_eq!(storage.failures(), 0);
    // No temporary files are left beside the copies.
    let names: Vec<String> = std::fs::read_dir(root.path().join("docs"))
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    Ok(())
}

#[tokio::test]
async fn a_stale_copy_is_refreshed_on_read_and_a_fresh_one_left_alone() -> Result<()> {
    let root = tempfile::tempdir().map_err(io)?;
    let inner = public_memory();
    let storage = MirroredStorage::new(Arc::clone(&inner), root.path())?;
    // Written behind the mirror's back, as another app server would.
    let meta = inner.save("a.txt", "version 1").await?;
    let file = root.path().join("a.txt");
    assert!(!file.exists());
    assert_eq!(storage.read_to_bytes("a.txt").await?.as_ref(), b"version 1");
    assert_eq!(std::fs::read(&file).map_err(io)?, b"version 1");
    assert!(storage.is_fresh(&meta).await);
    inner
        .save_with("a.txt", "version 2!", &SaveOptions::new().overwrite(true))
        .await?;
    assert!(
        !storage
            .is_fresh(&inner.metadata(&Name::new("a.txt")?).await?)
            .await
    );
    storage.read_to_bytes("a.txt").await?;
    assert_eq!(std::fs::read(&file).map_err(io)?, b"version 2!");
    // A fresh copy is not rewritten: a marker written into it survives a read.
    std::fs::write(&file, b"versio! 2!").map_err(io)?;
    storage.read_to_bytes("a.txt").await?;
    assert_eq!(std::fs::read(&file).map_err(io)?, b"versio! 2!");
    // A wrong hash file makes it stale again.
    std::fs::write(root.path().join("a.txt.hash"), "0000").map_err(io)?;
    storage.read_to_bytes("a.txt").await?;
    assert_eq!(std::fs::read(&file).map_err(io)?, b"version 2!");
    Ok(())
}

#[tokio::test]
async fn private_files_are_never_exported_and_deletes_remove_copies() -> Result<()> {
    let root = tempfile::tempdir().map_err(io)?;
    let storage = mirror(root.path())?;
    let public = storage.save("p.txt", "public").await?;
    assert!(root.path().join("p.txt").is_file());
    let private = SaveOptions::new()
        .visibility(Visibility::Private)
        .overwrite(true);
    storage.save_with("p.txt", "now secret", &private).await?;
    assert!(!root.path().join("p.txt").exists());
    assert!(!root.path().join("p.txt.hash").exists());
    storage.read_to_bytes("p.txt").await?;
    assert!(!root.path().join("p.txt").exists());
    let other = storage.save("q.txt", "q").await?;
    assert!(storage.delete(&other.name).await?);
    assert!(!root.path().join("q.txt").exists() && !root.path().join("q.txt.hash").exists());
    assert_eq!(public.name.as_str(), "p.txt");
    Ok(())
}

#[tokio::test]
async fn empty_missing_and_file_media_roots_are_refused() -> Result<()> {
    let inner = Arc::new(InMemoryStorage::new());
    for bad in ["", "/nonexistent/dbfiles-media-root"] {
        let result = MirroredStorage::new(Arc::clone(&inner), bad);
        assert!(
            matches!(result, Err(Error::BadRequest { .. })),
            "{bad:?}: {result:?}"
        );
    }
    let dir = tempfile::tempdir().map_err(io)?;
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").map_err(io)?;
    assert!(MirroredStorage::new(Arc::clone(&inner), &file).is_err());
    assert!(MirroredStorage::new(inner, "/").is_err());
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_cannot_lead_an_export_outside_the_media_root() -> Result<()> {
    let outside = tempfile::tempdir().map_err(io)?;
    let root = tempfile::tempdir().map_err(io)?;
    std::os::unix::fs::symlink(outside.path(), root.path().join("evil")).map_err(io)?;
    let storage = mirror(root.path())?;
    // The save itself succeeds (the storage is the truth); the export is refused and counted.
    let meta = storage.save("evil/x.txt", "x").await?;
    assert_eq!(meta.name.as_str(), "evil/x.txt");
    assert_eq!(
        std::fs::read_dir(outside.path()).map_err(io)?.count(),
        0,
        "wrote outside the media root"
    );
    assert_eq!(storage.failures(), 1);
    assert!(storage
        .last_failure()
        .is_some_and(|m| m.contains("outside the media root")));
    Ok(())
}

#[tokio::test]
async fn a_mirrored_storage_passes_the_conformance_suite() -> Result<()> {
    let root = tempfile::tempdir().map_err(io)?;
    let storage = Arc::new(mirror(root.path())?);
    storage_conformance::run_all_shared(storage.clone()).await?;
    assert_eq!(storage.failures(), 0, "{:?}", storage.last_failure());
    Ok(())
}

/// `photo.jpg.hash` is where `photo.jpg`'s checksum lives: a file of that name is refused
/// (nothing stored), and one stored before the mirror existed is never exported over it.
#[tokio::test]
async fn a_name_ending_in_hash_cannot_overwrite_a_checksum() -> Result<()> {
    let root = tempfile::tempdir().map_err(io)?;
    let inner = public_memory();
    inner
        .save("old.jpg.hash", "stored before the mirror")
        .await?;
    let storage = MirroredStorage::new(inner.clone(), root.path())?;
    let meta = storage.save("old.jpg", "jpeg bytes").await?;
    let checksum = root.path().join("old.jpg.hash");
    assert_eq!(
        Some(std::fs::read_to_string(&checksum).map_err(io)?),
        meta.sha256_hex()
    );

    // In any case (a media root on macOS or Windows ignores it), and as a directory part.
    for name in [
        "photo.jpg.hash",
        "photo.jpg.HASH",
        "old.jpg.Hash",
        "old.jpg.hash/x.txt",
    ] {
        let refused = storage
            .save_with(name, "evil", &SaveOptions::new().keep_name(true))
            .await;
        assert!(
            matches!(refused, Err(Error::InvalidName { .. })),
            "{name}: {refused:?}"
        );
        assert!(!inner.exists(name).await?, "{name}: nothing stored");
    }
    // `.hash` elsewhere in a part is an ordinary name.
    storage.save("notes.hash.txt", "fine").await?;
    let overwrite = storage
        .save_with("old.jpg.hash", "evil", &SaveOptions::new().overwrite(true))
        .await;
    assert!(
        matches!(overwrite, Err(Error::InvalidName { .. })),
        "{overwrite:?}"
    );

    // The old file is neither exported over the checksum nor removed with it.
    assert!(!storage.export(&Name::new("old.jpg.hash")?).await?);
    storage.delete(&Name::new("old.jpg.hash")?).await?;
    assert_eq!(
        Some(std::fs::read_to_string(&checksum).map_err(io)?),
        meta.sha256_hex()
    );
    assert!(storage.is_fresh(&meta).await);
    Ok(())
}
