//! Behaviour particular to `FileSystemStorage`: what lands on disk, atomic publishing, staging
//! files, permissions, URLs, and races between writers and deletes.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use storage_core::{
    ByteStream, Error, FileSystemStorage, Name, Result, SaveOptions, Storage, StorageExt,
    STAGING_DIR,
};

fn tempdir() -> Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|e| Error::backend("test", "tempdir", e))
}

fn storage(dir: &Path) -> Result<FileSystemStorage> {
    Ok(FileSystemStorage::new(dir)?.with_base_url(Some("/test_media_url/")))
}

fn staging_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join(STAGING_DIR)).map_or(0, |entries| entries.count())
}

#[cfg(unix)]
fn io(e: std::io::Error) -> Error {
    Error::backend("test", "setup", e)
}

fn keep() -> SaveOptions {
    SaveOptions::new().keep_name(true)
}

#[tokio::test]
async fn files_land_under_the_location_with_their_names() -> Result<()> {
    let dir = tempdir()?;
    let storage = storage(dir.path())?;
    // Django's test_file_storage_preserves_filename_case and test_file_path.
    let meta = storage
        .save("sub/CaSe_SeNsItIvE", "storage contents")
        .await?;
    let on_disk = dir.path().join("sub").join("CaSe_SeNsItIvE");
    assert_eq!(storage.path(&meta.name)?, on_disk);
    assert_eq!(
        std::fs::read(&on_disk).ok(),
        Some(b"storage contents".to_vec())
    );
    assert_eq!(
        staging_files(dir.path()),
        0,
        "published files leave no staging file"
    );
    assert!(!storage
        .listdir(None)
        .await?
        .dirs
        .contains(&STAGING_DIR.to_owned()));
    Ok(())
}

#[tokio::test]
async fn an_interrupted_write_is_never_visible_and_is_swept() -> Result<()> {
    let dir = tempdir()?;
    let storage = storage(dir.path())?;
    storage.save("keep.txt", "kept").await?;
    // What a crash mid-write leaves behind: a staging file and nothing else.
    std::fs::write(
        dir.path().join(STAGING_DIR).join("crashed.part"),
        b"half a file",
    )
    .map_err(|e| Error::backend("test", "write", e))?;
    let listing = storage.listdir(None).await?;
    assert_eq!(
        (listing.dirs.len(), listing.files),
        (0, vec!["keep.txt".to_owned()])
    );
    assert_eq!(
        storage
            .remove_stale_uploads(Duration::from_secs(3600))
            .await?,
        0
    );
    assert_eq!(storage.remove_stale_uploads(Duration::ZERO).await?, 1);
    assert_eq!(staging_files(dir.path()), 0);
    assert_eq!(
        storage.read_to_bytes("keep.txt").await?,
        Bytes::from_static(b"kept")
    );
    Ok(())
}

#[tokio::test]
async fn a_failed_stream_leaves_no_staging_file() -> Result<()> {
    let dir = tempdir()?;
    let storage = storage(dir.path())?;
    let items = vec![
        Ok(Bytes::from_static(b"abc")),
        Err(Error::TooLarge { limit: 3 }),
    ];
    let stream: ByteStream = Box::pin(futures::stream::iter(items));
    assert!(matches!(
        storage.save("x.bin", stream).await,
        Err(Error::TooLarge { limit: 3 })
    ));
    assert_eq!(staging_files(dir.path()), 0);
    assert!(!storage.exists("x.bin").await?);
    Ok(())
}

#[tokio::test]
async fn staging_directory_is_reserved() -> Result<()> {
    let dir = tempdir()?;
    let storage = storage(dir.path())?;
    let result = storage
        .save_with(&format!("{STAGING_DIR}/x.part"), "x", &keep())
        .await;
    assert!(
        matches!(result, Err(Error::InvalidName { .. })),
        "{result:?}"
    );
    assert!(matches!(
        storage
            .metadata(&Name::new(format!("{STAGING_DIR}/x"))?)
            .await,
        Err(Error::InvalidName { .. })
    ));
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn permission_modes_are_applied_exactly() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir()?;
    let storage = storage(dir.path())?
        .with_file_permissions(0o640)
        .with_directory_permissions(0o750);
    storage.save("a/b/file.txt", "x").await?;
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .ok()
    };
    assert_eq!(mode(&dir.path().join("a/b/file.txt")), Some(0o640));
    assert_eq!(mode(&dir.path().join("a")), Some(0o750));
    assert_eq!(mode(&dir.path().join("a/b")), Some(0o750));
    // Overwrites keep the configured mode too.
    storage
        .save_with("a/b/file.txt", "y", &SaveOptions::new().overwrite(true))
        .await?;
    assert_eq!(mode(&dir.path().join("a/b/file.txt")), Some(0o640));
    Ok(())
}

#[tokio::test]
async fn urls_follow_django() -> Result<()> {
    let dir = tempdir()?;
    let storage = storage(dir.path())?;
    let url = |s: &'static str| {
        let storage = storage.clone();
        async move { storage.url(&Name::new(s)?, None).await }
    };
    assert_eq!(url("test.file").await?, "/test_media_url/test.file");
    assert_eq!(url(r"a/b\c.file").await?, "/test_media_url/a/b/c.file");
    assert_eq!(
        url("~!*()'@#$%^&*abc`+ =.file").await?,
        "/test_media_url/~!*()'%40%23%24%25%5E%26*abc%60%2B%20%3D.file"
    );
    let no_slash = FileSystemStorage::new(dir.path())?.with_base_url(Some("/no_ending_slash"));
    assert_eq!(
        no_slash.url(&Name::new("test.file")?, None).await?,
        "/no_ending_slash/test.file"
    );
    let no_url = FileSystemStorage::new(dir.path())?.with_base_url(None);
    assert!(matches!(
        no_url.url(&Name::new("test.file")?, None).await,
        Err(Error::NotSupported { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn a_file_and_a_directory_cannot_share_a_name() -> Result<()> {
    let dir = tempdir()?;
    let storage = storage(dir.path())?;
    storage.save_with("a", "file a", &keep()).await?;
    let result = storage.save_with("a/b", "x", &keep()).await;
    assert!(
        matches!(result, Err(Error::InvalidName { .. })),
        "{result:?}"
    );
    assert_eq!(
        storage.read_to_bytes("a").await?,
        Bytes::from_static(b"file a")
    );
    storage.save_with("d/inner.txt", "x", &keep()).await?;
    // Deleting a directory's name deletes nothing.
    assert!(!storage.delete(&Name::new("d")?).await?);
    assert!(storage.exists("d/inner.txt").await?);
    assert!(matches!(
        storage.metadata(&Name::new("d")?).await,
        Err(Error::NotFound { .. })
    ));
    let overwrite = storage.save_with("d", "x", &keep().overwrite(true)).await;
    assert!(
        matches!(overwrite, Err(Error::InvalidName { .. })),
        "{overwrite:?}"
    );
    assert_eq!(staging_files(dir.path()), 0);
    Ok(())
}

#[tokio::test]
async fn a_read_in_flight_keeps_the_version_it_started_with() -> Result<()> {
    let dir = tempdir()?;
    let storage = storage(dir.path())?;
    let old = vec![b'o'; 300_000];
    storage.save("video.bin", old.clone()).await?;
    let mut opened = storage.open(&Name::new("video.bin")?, None).await?;
    let first = opened.stream.next().await.transpose()?.unwrap_or_default();
    storage
        .save_with(
            "video.bin",
            vec![b'n'; 300_000],
            &SaveOptions::new().overwrite(true),
        )
        .await?;
    let mut read = first.to_vec();
    while let Some(chunk) = opened.stream.next().await {
        read.extend_from_slice(&chunk?);
    }
    assert_eq!(read, old, "the reader saw part of the new version");
    assert_eq!(
        storage.read_to_bytes("video.bin").await?,
        Bytes::from(vec![b'n'; 300_000])
    );
    Ok(())
}

#[tokio::test]
async fn same_size_overwrite_changes_the_etag() -> Result<()> {
    let dir = tempdir()?;
    let storage = storage(dir.path())?;
    let overwrite = SaveOptions::new().overwrite(true);
    let first = storage.save_with("x.txt", "aaa", &overwrite).await?;
    let second = storage.save_with("x.txt", "bbb", &overwrite).await?;
    assert_ne!(first.etag, second.etag);
    assert_eq!(storage.metadata(&second.name).await?.etag, second.etag);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_survive_deletes_pruning_their_directory() -> Result<()> {
    let dir = tempdir()?;
    let storage = storage(dir.path())?.with_sync(false);
    for round in 0..40 {
        storage.save_with("deep/er/old.txt", "old", &keep()).await?;
        let old = Name::new("deep/er/old.txt")?;
        let (new_name, options) = (format!("deep/er/new{round}.txt"), keep());
        let (saved, deleted) = tokio::join!(
            storage.save_with(&new_name, "new", &options),
            storage.delete(&old),
        );
        assert!(deleted?);
        let saved = saved?;
        assert_eq!(
            storage.read_to_bytes(saved.name.as_str()).await?,
            Bytes::from_static(b"new")
        );
        assert!(storage.delete(&saved.name).await?);
    }
    assert!(
        storage.listdir(None).await?.dirs.is_empty(),
        "empty directories were left behind"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_in_one_new_directory_all_keep_their_bytes() -> Result<()> {
    let dir = tempdir()?;
    let storage = storage(dir.path())?.with_directory_permissions(0o755);
    let saves = (0..32).map(|i| {
        let storage = storage.clone();
        tokio::spawn(async move {
            storage
                .save("new/dir/tree/same.txt", format!("body {i}"))
                .await
        })
    });
    let mut names = std::collections::HashSet::new();
    for (i, handle) in saves.enumerate() {
        let meta = handle
            .await
            .map_err(|e| Error::backend("test", "join", e))??;
        assert_eq!(
            storage.read_to_bytes(meta.name.as_str()).await?,
            Bytes::from(format!("body {i}"))
        );
        names.insert(meta.name);
    }
    assert_eq!(names.len(), 32);
    Ok(())
}

/// A link back up the tree (`ln -s . again`, `ln -s .. up`) is not listed, so walking the
/// storage ends and lists each file once; a link to a directory elsewhere is followed.
#[cfg(unix)]
#[tokio::test]
async fn links_back_up_the_tree_are_not_walked() -> Result<()> {
    let dir = tempdir()?;
    let outside = tempdir()?;
    let storage = storage(dir.path())?;
    storage.save_with("a.txt", b"a".to_vec(), &keep()).await?;
    storage
        .save_with("sub/b.txt", b"b".to_vec(), &keep())
        .await?;
    std::fs::write(outside.path().join("c.txt"), b"c").map_err(io)?;
    let link = |target: &Path, at: &str| {
        std::os::unix::fs::symlink(target, dir.path().join(at)).map_err(io)
    };
    link(Path::new("."), "again")?;
    link(Path::new(".."), "sub/up")?;
    link(dir.path(), "sub/root")?;
    link(outside.path(), "elsewhere")?;
    // Loops through more than one link: outside and back, and two siblings linking each other.
    std::os::unix::fs::symlink(dir.path(), outside.path().join("back")).map_err(io)?;
    storage.save_with("x/x.txt", b"x".to_vec(), &keep()).await?;
    storage.save_with("y/y.txt", b"y".to_vec(), &keep()).await?;
    link(Path::new("../y"), "x/to-y")?;
    link(Path::new("../x"), "y/to-x")?;
    let names: Vec<String> = storage
        .walk_names(10_000)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    let first: Vec<&String> = names.iter().take(5).collect();
    assert!(names.len() == 7, "{} names: {first:?}...", names.len());
    // A sibling reached through a link is listed under that name too (as in Django), once.
    assert_eq!(
        names,
        [
            "a.txt",
            "elsewhere/c.txt",
            "sub/b.txt",
            "x/to-y/y.txt",
            "x/x.txt",
            "y/to-x/x.txt",
            "y/y.txt"
        ]
    );
    let listing = storage.listdir(None).await?;
    assert_eq!(listing.dirs, ["elsewhere", "sub", "x", "y"]);
    // Links back up are passed over without a word; a dangling one is named.
    assert_eq!(storage.unlistable_entries().await?, []);
    std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("sub/dangling"))
        .map_err(io)?;
    let refused = storage.unlistable_entries().await?;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused.iter().all(
            |(path, reason)| path.ends_with("sub/dangling") && reason.contains("dangling link")
        ),
        "{refused:?}"
    );
    // The links still lead to the files when named.
    assert_eq!(
        storage.read_to_bytes("again/a.txt").await?,
        Bytes::from_static(b"a")
    );
    Ok(())
}
