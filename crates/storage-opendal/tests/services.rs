//! The whole conformance suite, and what only remote services have (presigned and public URLs,
//! create-only writes across storage instances, the resend after a lost race), against real
//! servers on loopback: moto (S3), OpenSSH's sftp server, pyftpdlib (FTP), wsgidav (WebDAV),
//! Azurite (Azure Blob) and gcp-storage-emulator (GCS). `eval "$(bash scripts/remote-servers start)"` starts them and exports
//! the variables read here; `bash scripts/test` does that itself.
#![cfg(all(
    feature = "s3",
    feature = "sftp",
    feature = "ftp",
    feature = "webdav",
    feature = "azblob"
))]

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use storage_core::{ByteStream, Error, Name, Result, SaveOptions, Storage, StorageExt, Visibility};
use storage_opendal::{connect_url, OpendalStorage};

/// The value of `var` (see `storage_conformance::required_env`).
fn required_env(var: &str) -> Option<String> {
    storage_conformance::required_env(
        var,
        "run `eval \"$(bash scripts/remote-servers start)\"` first (bash scripts/test does)",
    )
}

/// A fresh prefix per run, so runs and services never see each other's files.
fn run_prefix() -> String {
    format!("run-{}", uuid::Uuid::new_v4().simple())
}

fn backend(message: &str) -> Error {
    Error::backend(
        "test",
        message.to_owned(),
        std::io::Error::other(message.to_owned()),
    )
}

async fn http_get(url: &str) -> Result<(u16, Bytes)> {
    let response = reqwest::get(url)
        .await
        .map_err(|e| Error::backend("test", "GET failed", e))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| Error::backend("test", "GET body failed", e))?;
    Ok((status, body))
}

/// The suite, then checks every remote service shares.
async fn conformance(storage: OpendalStorage) -> Result<Arc<dyn Storage>> {
    let storage: Arc<dyn Storage> = Arc::new(storage);
    storage_conformance::run_all_shared(Arc::clone(&storage)).await?;
    // The staging directory of file servers is never listed, and nothing is left in it.
    let root = storage.listdir(None).await?;
    assert!(
        !root.dirs.iter().any(|d| d == storage_core::STAGING_DIR),
        "{root:?}"
    );
    Ok(storage)
}

/// Reads while another task keeps replacing the file: every read is one whole version, the one
/// its metadata describes (a bounded number of rounds).
async fn reads_never_mix_versions(storage: Arc<dyn Storage>) -> Result<()> {
    let dir = storage_conformance::unique_dir("versions");
    let name = Name::new(format!("{dir}/flip.bin"))?;
    let version = |i: usize| {
        if i.is_multiple_of(2) {
            vec![b'a'; 1000]
        } else {
            vec![b'b'; 3000]
        }
    };
    let overwrite = SaveOptions::new().overwrite(true).keep_name(true);
    storage
        .save_with(name.as_str(), version(0), &overwrite)
        .await?;
    let writer = {
        let (storage, name, overwrite) = (Arc::clone(&storage), name.clone(), overwrite.clone());
        tokio::spawn(async move {
            // 50 replacements a second: a busy file. Replaced faster than a metadata request
            // and a read take, `open` gives up after eight tries rather than mix versions.
            for i in 1..=40 {
                storage
                    .save_with(name.as_str(), version(i), &overwrite)
                    .await?;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Ok::<_, Error>(())
        })
    };
    let mut reads = 0;
    while !writer.is_finished() && reads < 400 {
        let opened = storage.open(&name, None).await?;
        let size = opened.meta.size;
        let bytes = storage_core::collect_bytes(opened.stream).await?;
        let expected = if size == 1000 { b'a' } else { b'b' };
        assert_eq!(bytes.len() as u64, size, "read {reads}");
        assert!(
            bytes.iter().all(|b| *b == expected),
            "read {reads} mixed versions"
        );
        reads += 1;
    }
    writer
        .await
        .map_err(|e| Error::backend("test", "writer task failed", e))??;
    assert!(reads > 0);
    storage_conformance::remove_dir(storage.as_ref(), &dir).await
}

/// Content whose first chunk, when asked for, lets another storage instance take the name: the
/// name was free when checked, and is taken by the time the write completes.
fn content_that_loses_the_race(
    rival: Arc<dyn Storage>,
    name: String,
    chunks: Vec<Bytes>,
) -> ByteStream {
    let rival_write = futures::stream::once(async move {
        rival
            .save_with(
                &name,
                "the rival's bytes",
                &SaveOptions::new().keep_name(true),
            )
            .await
            .map(|_| Bytes::new())
    });
    Box::pin(rival_write.chain(futures::stream::iter(chunks.into_iter().map(Ok))))
}

/// A create-only write that loses its name between the check and the completion is sent again
/// under the next name, from the copy it kept (in memory, and spilled to disk when large).
async fn lost_race_resends(a: Arc<dyn Storage>, b: Arc<dyn Storage>) -> Result<()> {
    let dir = storage_conformance::unique_dir("lost-race");
    for (file, chunks) in [
        ("small.bin", vec![Bytes::from_static(b"mine, all of it")]),
        (
            "large.bin",
            (0..12u8).map(|i| Bytes::from(vec![i; 1 << 20])).collect(),
        ),
    ] {
        let target = format!("{dir}/{file}");
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
        let content = content_that_loses_the_race(Arc::clone(&b), target.clone(), chunks);
        let mine = a.save(&target, content).await?;
        assert_ne!(mine.name.as_str(), target, "the rival took the name first");
        assert!(storage_conformance::is_alternative_of(
            mine.name.as_str(),
            &target[..target.len() - 4],
            ".bin"
        ));
        assert_eq!(mine.size, expected.len() as u64);
        let read = a.read_to_bytes(mine.name.as_str()).await?;
        assert!(read == expected.as_slice(), "the resent bytes differ");
        assert_eq!(
            a.read_to_bytes(&target).await?,
            Bytes::from_static(b"the rival's bytes")
        );
    }
    storage_conformance::remove_dir(a.as_ref(), &dir).await
}

/// Public files get the plain URL (which serves them where the bucket lets anyone read: under
/// `public/` in the test bucket), private files a presigned one that serves them, where the
/// plain URL is refused.
async fn urls_fetch(public_storage: &dyn Storage, storage: &dyn Storage) -> Result<()> {
    let dir = storage_conformance::unique_dir("urls");
    let public = public_storage
        .save_with(
            &format!("{dir}/public file.txt"),
            "for everyone",
            &SaveOptions::new()
                .keep_name(true)
                .visibility(Visibility::Public),
        )
        .await?;
    let url = public_storage.url(&public.name, None).await?;
    assert!(
        url.contains("public%20file.txt") && !url.contains('?'),
        "{url}"
    );
    assert_eq!(
        http_get(&url).await?,
        (200, Bytes::from_static(b"for everyone"))
    );
    storage_conformance::remove_dir(public_storage, &dir).await?;

    let private = storage
        .save_with(
            &format!("{dir}/secret.txt"),
            "for the holder of a signed URL",
            &SaveOptions::new().visibility(Visibility::Private),
        )
        .await?;
    assert_eq!(
        storage.metadata(&private.name).await?.visibility,
        Visibility::Private
    );
    let signed = storage
        .url(&private.name, Some(std::time::Duration::from_secs(120)))
        .await?;
    assert!(signed.contains('?'), "{signed}");
    assert_eq!(
        http_get(&signed).await?,
        (200, Bytes::from_static(b"for the holder of a signed URL"))
    );
    let plain = signed.split('?').next().unwrap_or_default().to_owned();
    assert_eq!(http_get(&plain).await?.0, 403, "{plain}");
    storage_conformance::remove_dir(storage, &dir).await
}

/// Keys put there by another tool that no name can reach as they stand (a backslash reads as
/// `/`) are not listed, so a walk never hands out a name that stands for another file.
async fn unreachable_keys_are_not_listed(storage: &OpendalStorage) -> Result<()> {
    let dir = storage_conformance::unique_dir("odd");
    let keep = SaveOptions::new().keep_name(true);
    storage
        .save_with(&format!("{dir}/ok.txt"), "ok", &keep)
        .await?;
    let odd = [
        format!("{dir}/back\\slash.txt"),
        format!("{dir}/sub\\dir/inner.txt"),
        format!("{dir}\\sneaky.txt"),
    ];
    for key in &odd {
        storage
            .operator()
            .write(key, "not ours")
            .await
            .map_err(|e| Error::backend("test", "cannot write a raw key", e))?;
    }
    storage_conformance::lists_only_reachable_names(storage, &dir).await?;
    for key in &odd {
        storage
            .operator()
            .delete(key)
            .await
            .map_err(|e| Error::backend("test", "cannot delete a raw key", e))?;
    }
    storage.delete(&Name::new(format!("{dir}/ok.txt"))?).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_on_moto() -> Result<()> {
    let (Some(endpoint), Some(bucket)) = (
        required_env("DBFILES_TEST_S3_ENDPOINT"),
        required_env("DBFILES_TEST_S3_BUCKET"),
    ) else {
        return Ok(());
    };
    let url = format!(
        "s3://{bucket}/{}?endpoint={endpoint}&region=us-east-1",
        run_prefix()
    );
    let storage = connect_url(&url).await?;
    unreachable_keys_are_not_listed(&storage).await?;
    let caps = storage.capabilities();
    assert!(caps.atomic_create && caps.private_files && caps.stored_content_type);
    assert_eq!(storage.default_visibility(), Visibility::Private);
    let a = conformance(storage).await?;
    let b: Arc<dyn Storage> = Arc::new(connect_url(&url).await?);
    storage_conformance::two_instances_get_distinct_names(a.as_ref(), b.as_ref()).await?;
    lost_race_resends(Arc::clone(&a), Arc::clone(&b)).await?;
    reads_never_mix_versions(Arc::clone(&a)).await?;
    let public = connect_url(&format!(
        "s3://{bucket}/public/{}?endpoint={endpoint}&visibility=public",
        run_prefix()
    ))
    .await?;
    urls_fetch(&public, a.as_ref()).await?;
    // A custom domain (django-storages' custom_domain) for public files.
    let cdn = connect_url(&format!(
        "{url}&public_url=https://cdn.example.com/media/&visibility=public"
    ))
    .await?;
    let saved = cdn.save("logo.png", "png").await?;
    assert_eq!(saved.visibility, Visibility::Public);
    assert_eq!(
        cdn.url(&saved.name, None).await?,
        "https://cdn.example.com/media/logo.png"
    );
    cdn.delete(&saved.name).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azblob_on_azurite() -> Result<()> {
    let (Some(endpoint), Some(container), Some(_key)) = (
        required_env("DBFILES_TEST_AZBLOB_ENDPOINT"),
        required_env("DBFILES_TEST_AZBLOB_CONTAINER"),
        required_env("AZURE_STORAGE_ACCOUNT_KEY"),
    ) else {
        return Ok(());
    };
    let account = required_env("DBFILES_TEST_AZBLOB_ACCOUNT_NAME").unwrap_or_default();
    let url = format!(
        "azblob://{container}/{}?endpoint={endpoint}&account_name={account}",
        run_prefix()
    );
    let storage = connect_url(&url).await?;
    let caps = storage.capabilities();
    assert!(caps.atomic_create && caps.private_files);
    let a = conformance(storage).await?;
    let b: Arc<dyn Storage> = Arc::new(connect_url(&url).await?);
    storage_conformance::two_instances_get_distinct_names(a.as_ref(), b.as_ref()).await?;
    lost_race_resends(Arc::clone(&a), Arc::clone(&b)).await?;
    reads_never_mix_versions(a).await
}

/// File servers: the suite, and names that only a rename makes visible.
async fn file_server(url: &str) -> Result<()> {
    let storage = connect_url(url).await?;
    let caps = storage.capabilities();
    assert!(!caps.atomic_create && !caps.private_files);
    let private = storage
        .save_with(
            "secret.txt",
            "s",
            &SaveOptions::new().visibility(Visibility::Private),
        )
        .await;
    assert!(
        matches!(private, Err(Error::NotSupported { .. })),
        "{private:?}"
    );
    assert!(!storage.exists("secret.txt").await?);
    let again = connect_url(url).await?;
    // An overwrite under a directory's name is refused and leaves the directory alone (a
    // WebDAV MOVE with Overwrite: T would delete it).
    storage.save("folder/inside.txt", "kept").await?;
    let over = storage
        .save_with("folder", "x", &SaveOptions::new().overwrite(true))
        .await;
    assert!(matches!(over, Err(Error::InvalidName { .. })), "{over:?}");
    assert_eq!(
        storage.read_to_bytes("folder/inside.txt").await?,
        Bytes::from_static(b"kept")
    );
    storage.delete(&Name::new("folder/inside.txt")?).await?;
    conformance(storage).await?;
    // A crash between staging and publishing leaves only a staged file: never listed, and
    // removed by the sweep once old enough.
    let staged = format!("{}/crashed", storage_core::STAGING_DIR);
    again
        .operator()
        .write(&staged, "half an upload")
        .await
        .map_err(|e| Error::backend("test", "cannot stage", e))?;
    assert!(!again
        .listdir(None)
        .await?
        .dirs
        .iter()
        .any(|d| d == storage_core::STAGING_DIR));
    assert!(matches!(
        again.metadata(&Name::new(&staged)?).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        again
            .remove_stale_uploads(std::time::Duration::from_secs(3600))
            .await?,
        0
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        again
            .remove_stale_uploads(std::time::Duration::from_secs(1))
            .await?,
        1
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sftp_on_openssh() -> Result<()> {
    let (Some(endpoint), Some(key), Some(root)) = (
        required_env("DBFILES_TEST_SFTP_ENDPOINT"),
        required_env("DBFILES_TEST_SFTP_KEY"),
        required_env("DBFILES_TEST_SFTP_ROOT"),
    ) else {
        return Ok(());
    };
    let authority = endpoint
        .strip_prefix("ssh://")
        .ok_or_else(|| backend("DBFILES_TEST_SFTP_ENDPOINT is not ssh://"))?;
    file_server(&format!(
        "sftp://{authority}{root}/{}?key={key}",
        run_prefix()
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ftp_on_pyftpdlib() -> Result<()> {
    let (Some(endpoint), Some(user), Some(password)) = (
        required_env("DBFILES_TEST_FTP_ENDPOINT"),
        required_env("DBFILES_TEST_FTP_USER"),
        required_env("DBFILES_TEST_FTP_PASSWORD"),
    ) else {
        return Ok(());
    };
    let host = endpoint
        .strip_prefix("ftp://")
        .ok_or_else(|| backend("DBFILES_TEST_FTP_ENDPOINT is not ftp://"))?;
    file_server(&format!("ftp://{user}:{password}@{host}/{}", run_prefix())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webdav_on_wsgidav() -> Result<()> {
    let Some(endpoint) = required_env("DBFILES_TEST_WEBDAV_ENDPOINT") else {
        return Ok(());
    };
    let host = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| backend("DBFILES_TEST_WEBDAV_ENDPOINT is not http://"))?;
    let url = format!("webdav://{host}/{}", run_prefix());
    file_server(&url).await?;
    // WebDAV serves files over HTTP: the public URL is the file's.
    let storage = connect_url(&url).await?;
    let saved = storage.save("page one.txt", "served").await?;
    let public = storage.url(&saved.name, None).await?;
    assert_eq!(
        http_get(&public).await?,
        (200, Bytes::from_static(b"served"))
    );
    storage.delete(&saved.name).await?;
    Ok(())
}

/// GCS on gcp-storage-emulator (PyPI): the conformance suite over OpenDAL's GCS service,
/// anonymous (the emulator checks no credentials).
#[cfg(feature = "gcs")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gcs_on_emulator() -> Result<()> {
    let (Some(endpoint), Some(bucket)) = (
        required_env("DBFILES_TEST_GCS_ENDPOINT"),
        required_env("DBFILES_TEST_GCS_BUCKET"),
    ) else {
        return Ok(());
    };
    let url = format!(
        "gcs://{bucket}/{}?endpoint={endpoint}&anonymous=true",
        run_prefix()
    );
    let storage = connect_url(&url).await?;
    let caps = storage.capabilities();
    assert!(caps.atomic_create && caps.private_files);
    // The emulator ignores `ifGenerationMatch=0` (two instances racing for one name were seen
    // to share it there), so the races between instances are not run: only the suite, whose
    // in-process races the claims decide.
    conformance(storage).await?;
    Ok(())
}
