//! One async function per [`Storage`] behaviour; every backend's tests call [`run_all`].
//!
//! Each function works under its own random directory, cleans up after itself, and returns an
//! error (or fails an assertion) when the backend misbehaves, so a suite can run against a shared
//! database alongside other tests. Errors are checked by meaning
//! (`matches!(e, Error::NotFound { .. })`), never by message text.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use storage_core::InMemoryStorage;
//! storage_conformance::run_all(&InMemoryStorage::new()).await?;
//! # Ok::<(), storage_core::Error>(()) }).unwrap();
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use storage_core::naming::{NameCandidates, RANDOM_SUFFIX_LEN};
use storage_core::{
    ByteRange, ByteStream, Error, Name, PutOptions, Result, SaveOptions, Storage, StorageExt,
    UploadTo, Visibility,
};

/// How many tasks race for one name in [`concurrent_saves_get_distinct_names`].
pub const RACING_WRITERS: usize = 50;

/// Size of the file [`large_streamed_file`] writes and reads: 64 MiB.
pub const LARGE_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Runs every behaviour in turn, stopping at the first failure.
pub async fn run_all(storage: &dyn Storage) -> Result<()> {
    run_all_but(storage, &[]).await
}

/// [`run_all`] without the behaviours named in `skip` (function names), for a storage that
/// cannot have what they check (say the modification times of a test double). A name that is
/// no behaviour fails, so a typo never skips nothing silently.
pub async fn run_all_but(storage: &dyn Storage, skip: &[&str]) -> Result<()> {
    macro_rules! behaviours {
        ($($behaviour:ident),* $(,)?) => {{
            let known = [$(stringify!($behaviour)),*];
            for name in skip {
                assert!(known.contains(name), "no conformance behaviour is called {name:?}");
            }
            $(
                if !skip.contains(&stringify!($behaviour)) {
                    $behaviour(storage).await?;
                }
            )*
        }};
    }
    behaviours!(
        save_and_read_back,
        valid_names,
        refused_names_store_nothing,
        collision_gets_random_suffix,
        concurrent_saves_get_distinct_names,
        create_only_put_refuses_taken_name,
        overwrite_replaces_content,
        max_length_truncates_names,
        upload_to_places_files,
        ranges,
        empty_file,
        large_streamed_file,
        listdir_lists_dirs_and_files,
        delete_is_idempotent,
        metadata_and_checksum,
        failed_upload_stores_nothing,
        copy_to_new_name,
        visibility,
        url_for_saved_file,
    );
    Ok(())
}

/// [`run_all`], plus the behaviours that need a shared `Arc<dyn Storage>`: writers on separate
/// tokio tasks (so on separate threads under a multi-thread runtime).
pub async fn run_all_shared(storage: Arc<dyn Storage>) -> Result<()> {
    run_all(storage.as_ref()).await?;
    racing_tasks_get_distinct_names(storage).await
}

/// The value of `var`, an environment variable naming a real server a backend's suite needs.
/// Without it the suite is skipped with a `SKIPPED:` line saying `how` to run it, except under
/// `CI=true`, where a missing variable fails the run: a suite that must run in CI never skips
/// silently.
#[allow(clippy::print_stderr)] // the skip must show in the test output
pub fn required_env(var: &str, how: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{var} is not set under CI=true: these tests must run in CI"
            );
            eprintln!("SKIPPED: {var} is not set; {how}");
            None
        }
    }
}

/// Two storages over the same place with nothing shared in the process (two app servers)
/// save one name at once, 16 times: every save gets a name of its own and keeps its bytes. For
/// backends whose [`Capabilities::atomic_create`](storage_core::Capabilities) is true.
pub async fn two_instances_get_distinct_names(a: &dyn Storage, b: &dyn Storage) -> Result<()> {
    let dir = unique_dir("instances");
    race_for_one_name(&[a, b], 16, &format!("{dir}/shared.txt")).await?;
    remove_dir(a, &dir).await
}

/// `writers` saves of `target` at once, spread over `storages`: each gets a name of its own
/// and keeps its bytes (read back through the first storage). Returns the names.
async fn race_for_one_name(
    storages: &[&dyn Storage],
    writers: usize,
    target: &str,
) -> Result<HashSet<Name>> {
    let saves = (0..writers).map(|i| {
        let storage = storages.get(i % storages.len().max(1)).copied();
        async move {
            let storage = storage.ok_or_else(|| Error::NotSupported {
                backend: "conformance",
                operation: "a race without storages".to_owned(),
            })?;
            let body = format!("writer {i}");
            let meta = storage.save(target, body.clone()).await?;
            Ok::<_, Error>((meta.name, body))
        }
    });
    let saved = futures::future::try_join_all(saves).await?;
    let names: HashSet<_> = saved.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names.len(), writers, "racing writers shared a name");
    if let Some(first) = storages.first() {
        for (stored, body) in &saved {
            assert_eq!(
                first.read_to_bytes(stored.as_str()).await?,
                Bytes::from(body.clone()),
                "{stored}"
            );
        }
    }
    Ok(names)
}

/// A PNG's signature and header chunk for a `width` x `height` picture: all that type
/// sniffing and the image-size checks read (nothing decodes pixels), for tests of uploads.
pub fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(&width.to_be_bytes());
    png.extend_from_slice(&height.to_be_bytes());
    png.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    png
}

/// A PNG that is also an HTML page: [`png_header`], then a text chunk holding a script. An image
/// check passes it (it is a PNG), and a server that goes by a `.html` name would run the script;
/// the upload tests send it as `me.html` and require it stored as `.png`.
pub fn png_with_html(width: u32, height: u32) -> Vec<u8> {
    let text = b"comment\0<html><script>alert(document.domain)</script></html>";
    let mut png = png_header(width, height);
    png.extend_from_slice(&u32::try_from(text.len()).unwrap_or(0).to_be_bytes());
    png.extend_from_slice(b"tEXt");
    png.extend_from_slice(text);
    // Sniffers and size checks read no checksums: zeros stand in for the CRCs.
    png.extend_from_slice(&[0; 4]);
    png.extend_from_slice(b"\0\0\0\0IEND\0\0\0\0");
    png
}

/// A fresh directory name for one behaviour, so suites can share a database.
pub fn unique_dir(behaviour: &str) -> String {
    let random = Alphanumeric
        .sample_string(&mut rand::thread_rng(), 10)
        .to_lowercase();
    format!("conformance-{behaviour}-{random}")
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn name(s: &str) -> Result<Name> {
    Name::new(s)
}

/// True when `stored` is `{dir}/{root}_XXXXXXX{ext}` with Django's seven random alphanumerics.
pub fn is_alternative_of(stored: &str, root: &str, ext: &str) -> bool {
    stored
        .strip_prefix(root)
        .and_then(|rest| rest.strip_suffix(ext))
        .and_then(|middle| middle.strip_prefix('_'))
        .is_some_and(|random| {
            random.len() == RANDOM_SUFFIX_LEN && random.chars().all(|c| c.is_ascii_alphanumeric())
        })
}

/// For a backend that can hold entries no name reaches as they stand (put there by another
/// tool): `dir` holds such entries and one file saved as `dir/ok.txt`, and the root holds
/// `{dir}\sneaky.txt` (which `Name::new` would read as `{dir}/sneaky.txt`). Checks that only
/// `ok.txt` is listed in `dir` and that a walk finds nothing else under `dir`.
pub async fn lists_only_reachable_names(storage: &dyn Storage, dir: &str) -> Result<()> {
    let listing = storage.listdir(Some(&name(dir)?)).await?;
    assert_eq!(listing.files, ["ok.txt"], "{listing:?}");
    assert!(listing.dirs.is_empty(), "{listing:?}");
    let inside = format!("{dir}/");
    let walked: Vec<String> = storage
        .walk_names(100_000)
        .await?
        .iter()
        .map(ToString::to_string)
        .filter(|n| n.starts_with(&inside))
        .collect();
    assert_eq!(walked, [format!("{dir}/ok.txt")]);
    Ok(())
}

/// Deletes everything under `dir`, recursively, and checks the directory is gone.
pub async fn remove_dir(storage: &dyn Storage, dir: &str) -> Result<()> {
    let mut pending = vec![dir.to_owned()];
    let mut guard = 0;
    while let Some(current) = pending.pop() {
        guard += 1;
        assert!(guard < 10_000, "directory tree under {dir} does not end");
        let listing = storage.listdir(Some(&name(&current)?)).await?;
        for file in listing.files {
            storage.delete(&name(&format!("{current}/{file}"))?).await?;
        }
        pending.extend(listing.dirs.into_iter().map(|d| format!("{current}/{d}")));
    }
    let left = storage.listdir(Some(&name(dir)?)).await?;
    assert!(
        left.files.is_empty() && left.dirs.is_empty(),
        "{dir} not empty after cleanup: {left:?}"
    );
    Ok(())
}

/// Save, then read back, check existence and size.
pub async fn save_and_read_back(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("save");
    let meta = storage
        .save(&format!("{dir}/hello.txt"), "hello, world")
        .await?;
    assert_eq!(meta.name.as_str(), format!("{dir}/hello.txt"));
    assert_eq!(meta.size, 12);
    assert_eq!(
        storage.read_to_bytes(meta.name.as_str()).await?,
        Bytes::from_static(b"hello, world")
    );
    assert!(storage.exists(meta.name.as_str()).await?);
    assert!(!storage.exists(format!("{dir}/other.txt")).await?);
    assert_eq!(storage.size(meta.name.as_str()).await?, 12);
    let names = storage.listdir(Some(&name(&dir)?)).await?;
    assert_eq!(names.files, vec!["hello.txt".to_owned()]);
    remove_dir(storage, &dir).await
}

/// Names are cleaned with Django's `get_valid_name` unless `keep_name` is set.
pub async fn valid_names(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("valid");
    let cleaned = storage
        .save(&format!("{dir}/john's portrait in 2004.jpg"), "x")
        .await?;
    assert_eq!(
        cleaned.name.as_str(),
        format!("{dir}/johns_portrait_in_2004.jpg")
    );
    let kept = storage
        .save_with(
            &format!("{dir}/keep me (1).txt"),
            "x",
            &SaveOptions::new().keep_name(true),
        )
        .await?;
    assert_eq!(kept.name.as_str(), format!("{dir}/keep me (1).txt"));
    assert_eq!(
        storage.read_to_bytes(kept.name.as_str()).await?,
        Bytes::from_static(b"x")
    );
    let unicode = storage.save(&format!("{dir}/résumé 2024.pdf"), "x").await?;
    assert_eq!(unicode.name.as_str(), format!("{dir}/résumé_2024.pdf"));
    remove_dir(storage, &dir).await
}

/// Unsafe or unusable names are refused before the backend is touched, and nothing is stored.
pub async fn refused_names_store_nothing(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("refused");
    let suspicious = [
        format!("{dir}/../escape.txt"),
        format!("/{dir}/abs.txt"),
        format!("{dir}/..\\..\\escape.txt"),
        "C:\\Windows\\evil.txt".to_owned(),
        format!("{dir}/nul\0.txt"),
        "../../etc/passwd".to_owned(),
    ];
    for bad in &suspicious {
        let result = storage
            .save_with(bad, "x", &SaveOptions::new().keep_name(true))
            .await;
        assert!(
            matches!(result, Err(Error::SuspiciousPath { .. })),
            "{bad:?} gave {result:?}"
        );
        let result = storage.save(bad, "x").await;
        assert!(
            result.as_ref().is_err_and(Error::is_name_error),
            "{bad:?} gave {result:?}"
        );
    }
    for bad in [
        String::new(),
        format!("{dir}/"),
        format!("{dir}/."),
        format!("{dir}/???"),
        format!("{dir}/{}", "a".repeat(1100)),
    ] {
        let result = storage.save(&bad, "x").await;
        assert!(
            matches!(result, Err(Error::InvalidName { .. })),
            "{bad:?} gave {result:?}"
        );
    }
    let listing = storage.listdir(Some(&name(&dir)?)).await?;
    assert!(
        listing.files.is_empty() && listing.dirs.is_empty(),
        "refused saves stored {listing:?}"
    );
    Ok(())
}

/// A taken name gets `_` and seven random alphanumerics before all its extensions.
pub async fn collision_gets_random_suffix(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("collide");
    for (file, root, ext) in [
        ("x.tar.gz", "x", ".tar.gz"),
        ("plain", "plain", ""),
        (".hidden", ".hidden", ""),
    ] {
        let first = storage
            .save(&format!("{dir}/dotted.dir/{file}"), "one")
            .await?;
        let second = storage
            .save(&format!("{dir}/dotted.dir/{file}"), "two")
            .await?;
        assert_eq!(first.name.as_str(), format!("{dir}/dotted.dir/{file}"));
        assert!(
            is_alternative_of(
                second.name.as_str(),
                &format!("{dir}/dotted.dir/{root}"),
                ext
            ),
            "{} is not an alternative of {file}",
            second.name
        );
        assert_eq!(
            storage.read_to_bytes(first.name.as_str()).await?,
            Bytes::from_static(b"one")
        );
        assert_eq!(
            storage.read_to_bytes(second.name.as_str()).await?,
            Bytes::from_static(b"two")
        );
    }
    remove_dir(storage, &dir).await
}

/// [`RACING_WRITERS`] saves of one name at once get distinct names, each with its own bytes.
pub async fn concurrent_saves_get_distinct_names(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("race");
    let target = format!("{dir}/report.pdf");
    let names = race_for_one_name(&[storage], RACING_WRITERS, &target).await?;
    assert!(
        names.contains(&name(&target)?),
        "nobody got the requested name"
    );
    assert_eq!(
        storage.listdir(Some(&name(&dir)?)).await?.files.len(),
        RACING_WRITERS
    );
    remove_dir(storage, &dir).await
}

/// [`RACING_WRITERS`] spawned tasks saving one name get distinct names, each with its own bytes.
pub async fn racing_tasks_get_distinct_names(storage: Arc<dyn Storage>) -> Result<()> {
    let dir = unique_dir("tasks");
    let target = format!("{dir}/avatar.png");
    let handles: Vec<_> = (0..RACING_WRITERS)
        .map(|i| {
            let (storage, target) = (Arc::clone(&storage), target.clone());
            tokio::spawn(async move {
                let body = vec![u8::try_from(i % 256).unwrap_or_default(); 1000 + i];
                let meta = storage.save(&target, body.clone()).await?;
                Ok::<_, Error>((meta.name, body))
            })
        })
        .collect();
    let mut names = HashSet::new();
    for handle in handles {
        let (stored, body) = handle
            .await
            .map_err(|e| Error::backend("conformance", "writer task failed", e))??;
        assert_eq!(
            storage.read_to_bytes(stored.as_str()).await?,
            Bytes::from(body),
            "{stored}"
        );
        names.insert(stored);
    }
    assert_eq!(names.len(), RACING_WRITERS, "racing tasks shared a name");
    remove_dir(storage.as_ref(), &dir).await
}

/// `put_new` with an exact name fails with `AlreadyExists` and leaves the stored file alone.
pub async fn create_only_put_refuses_taken_name(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("create-only");
    let taken = name(&format!("{dir}/taken.txt"))?;
    let mut exact = NameCandidates::exact(taken.clone());
    storage
        .put_new(
            &mut exact,
            storage_core::bytes_stream("original"),
            &PutOptions::new(),
        )
        .await?;
    let mut again = NameCandidates::exact(taken.clone());
    let result = storage
        .put_new(
            &mut again,
            storage_core::bytes_stream("intruder"),
            &PutOptions::new(),
        )
        .await;
    assert!(
        matches!(result, Err(Error::AlreadyExists { .. })),
        "{result:?}"
    );
    assert_eq!(
        storage.read_to_bytes(taken.as_str()).await?,
        Bytes::from_static(b"original")
    );
    assert_eq!(
        storage.listdir(Some(&name(&dir)?)).await?.files,
        vec!["taken.txt".to_owned()]
    );
    remove_dir(storage, &dir).await
}

/// With `overwrite`, saving a taken name replaces its content, shorter content included.
pub async fn overwrite_replaces_content(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("overwrite");
    let options = SaveOptions::new().overwrite(true);
    let target = format!("{dir}/test.file");
    let first = storage
        .save_with(&target, "content extra extra extra", &options)
        .await?;
    let second = storage.save_with(&target, "content", &options).await?;
    assert_eq!(first.name, second.name);
    assert_eq!(second.name.as_str(), target);
    assert_eq!(
        storage.read_to_bytes(&target).await?,
        Bytes::from_static(b"content")
    );
    assert_eq!(storage.size(&target).await?, 7);
    assert_ne!(
        first.etag, second.etag,
        "the ETag must change with the content"
    );
    assert_eq!(storage.metadata(&second.name).await?.etag, second.etag);
    assert_eq!(storage.listdir(Some(&name(&dir)?)).await?.files.len(), 1);
    remove_dir(storage, &dir).await
}

/// `max_length` shortens the root of a name as Django does, and fails when nothing fits.
pub async fn max_length_truncates_names(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("maxlen");
    let max = dir.chars().count() + 1 + 14;
    let limited = SaveOptions::new().max_length(max);
    let first = storage
        .save_with(&format!("{dir}/filename.ext"), "a", &limited)
        .await?;
    assert_eq!(first.name.as_str(), format!("{dir}/filename.ext"));
    let second = storage
        .save_with(&format!("{dir}/filename.ext"), "b", &limited)
        .await?;
    assert!(
        is_alternative_of(second.name.as_str(), &format!("{dir}/fi"), ".ext"),
        "{}",
        second.name
    );
    assert_eq!(second.name.char_len(), max);
    storage
        .save_with(&format!("{dir}/s.longext"), "c", &limited)
        .await?;
    let result = storage
        .save_with(&format!("{dir}/s.longext"), "d", &limited)
        .await;
    assert!(
        matches!(result, Err(Error::InvalidName { .. })),
        "{result:?}"
    );
    let overwrite = SaveOptions::new()
        .max_length(dir.chars().count() + 11)
        .overwrite(true);
    let cut = storage
        .save_with(&format!("{dir}/test_long_file_name.txt"), "e", &overwrite)
        .await?;
    assert_eq!(cut.name.as_str(), format!("{dir}/test_l.txt"));
    assert_eq!(storage.listdir(Some(&name(&dir)?)).await?.files.len(), 4);
    remove_dir(storage, &dir).await
}

/// `upload_to` as a dated template and as a function.
pub async fn upload_to_places_files(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("upload-to");
    let dated = SaveOptions::new().upload_to(UploadTo::template(format!("{dir}/%Y/%m/")));
    let meta = storage.save_with("cat photo.jpg", "meow", &dated).await?;
    let parts: Vec<&str> = meta.name.parts().collect();
    assert_eq!(parts.len(), 4, "{}", meta.name);
    assert!(parts
        .get(1)
        .is_some_and(|y| y.len() == 4 && y.chars().all(|c| c.is_ascii_digit())));
    assert_eq!(parts.get(3), Some(&"cat_photo.jpg"));
    let uuid = SaveOptions::new().upload_to(UploadTo::uuid(format!("{dir}/profile_pics")));
    let a = storage.save_with("me.PNG", "png", &uuid).await?;
    let b = storage.save_with("me.PNG", "png", &uuid).await?;
    assert_ne!(a.name, b.name);
    assert_eq!(a.name.dir(), format!("{dir}/profile_pics"));
    assert!(a.name.as_str().ends_with(".png"));
    remove_dir(storage, &dir).await
}

/// Ranges: first byte, last byte, suffix, open-ended, past the end.
pub async fn ranges(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("ranges");
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let meta = storage
        .save(&format!("{dir}/data.bin"), data.clone())
        .await?;
    let slice = |r: std::ops::Range<usize>| Bytes::copy_from_slice(data.get(r).unwrap_or_default());
    let cases = [
        (ByteRange::new(0, 1), 0..1),
        (ByteRange::new(999, 1000), 999..1000),
        (ByteRange::new(100, 200), 100..200),
        (ByteRange::Suffix(10), 990..1000),
        (ByteRange::Suffix(5000), 0..1000),
        (ByteRange::From(995), 995..1000),
        (ByteRange::new(990, 5000), 990..1000),
        (ByteRange::From(1000), 1000..1000),
    ];
    for (range, expected) in cases {
        let opened = storage.open(&meta.name, Some(range)).await?;
        assert_eq!(
            opened.range,
            expected.start as u64..expected.end as u64,
            "{range:?}"
        );
        assert_eq!(opened.meta.size, 1000);
        assert_eq!(
            storage_core::collect_bytes(opened.stream).await?,
            slice(expected),
            "{range:?}"
        );
    }
    let past = storage.open(&meta.name, Some(ByteRange::From(1001))).await;
    assert!(
        matches!(
            past,
            Err(Error::InvalidRange {
                start: 1001,
                size: 1000
            })
        ),
        "{past:?}"
    );
    remove_dir(storage, &dir).await
}

/// Empty files are files: stored, listed, sized 0, read as nothing.
pub async fn empty_file(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("empty");
    let meta = storage
        .save(&format!("{dir}/empty.txt"), Bytes::new())
        .await?;
    assert_eq!(meta.size, 0);
    assert_eq!(meta.sha256, Some(sha256(b"")));
    assert!(storage.exists(meta.name.as_str()).await?);
    assert_eq!(storage.size(meta.name.as_str()).await?, 0);
    assert!(storage.read_to_bytes(meta.name.as_str()).await?.is_empty());
    let opened = storage.open(&meta.name, Some(ByteRange::From(0))).await?;
    assert!(storage_core::collect_bytes(opened.stream).await?.is_empty());
    remove_dir(storage, &dir).await
}

fn large_chunk(index: u64) -> Bytes {
    // A cheap pattern that differs per chunk and per byte, so misplaced chunks are caught.
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut chunk = Vec::with_capacity(1 << 20);
    for _ in 0..(1 << 17) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.extend_from_slice(&state.to_le_bytes());
    }
    Bytes::from(chunk)
}

/// A [`LARGE_FILE_SIZE`] file written and read as a stream of 1 MiB chunks, checked by SHA-256,
/// plus a range read across a chunk boundary.
///
/// A backend with a [`Capabilities::max_file_size`](storage_core::Capabilities) below that
/// writes the largest whole number of MiB it takes instead, and must refuse one byte more with
/// [`Error::TooLarge`], storing nothing.
pub async fn large_streamed_file(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("large");
    let size = match storage.capabilities().max_file_size {
        Some(limit) if limit < LARGE_FILE_SIZE => {
            let over = storage
                .save(
                    &format!("{dir}/over.bin"),
                    Bytes::from(vec![7u8; usize::try_from(limit + 1).unwrap_or(usize::MAX)]),
                )
                .await;
            assert!(
                matches!(over, Err(Error::TooLarge { limit: l }) if l == limit),
                "{over:?}"
            );
            assert!(!storage.exists(format!("{dir}/over.bin")).await?);
            (limit >> 20) << 20
        }
        _ => LARGE_FILE_SIZE,
    };
    assert!(
        size >= 4 << 20,
        "a backend must store files of at least 4 MiB"
    );
    let chunks = size >> 20;
    let mut expected = Sha256::new();
    for i in 0..chunks {
        expected.update(large_chunk(i));
    }
    let expected: [u8; 32] = expected.finalize().into();
    let stream: ByteStream = Box::pin(futures::stream::iter(0..chunks).map(|i| Ok(large_chunk(i))));
    let meta = storage.save(&format!("{dir}/large.bin"), stream).await?;
    assert_eq!(meta.size, size);
    assert_eq!(meta.sha256, Some(expected));
    let mut opened = storage.open(&meta.name, None).await?;
    let mut hasher = Sha256::new();
    let mut read = 0u64;
    while let Some(chunk) = opened.stream.try_next().await? {
        read += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(read, size);
    assert_eq!(<[u8; 32]>::from(hasher.finalize()), expected);
    let boundary = (1u64 << 20) * 3;
    let opened = storage
        .open(
            &meta.name,
            Some(ByteRange::new(boundary - 10, boundary + 10)),
        )
        .await?;
    let got = storage_core::collect_bytes(opened.stream).await?;
    let mut want = large_chunk(2).slice((1 << 20) - 10..).to_vec();
    want.extend_from_slice(&large_chunk(3).slice(..10));
    assert_eq!(got, Bytes::from(want));
    remove_dir(storage, &dir).await
}

/// `listdir` gives sorted directories and files directly under a directory; a missing directory
/// is empty; directories vanish with their last file.
pub async fn listdir_lists_dirs_and_files(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("listdir");
    for file in [
        "b.txt",
        "a.txt",
        "sub/c.txt",
        "sub/deeper/d.txt",
        "other/e.txt",
    ] {
        storage
            .save_with(
                &format!("{dir}/{file}"),
                "x",
                &SaveOptions::new().keep_name(true),
            )
            .await?;
    }
    let top = storage.listdir(Some(&name(&dir)?)).await?;
    assert_eq!(top.dirs, vec!["other".to_owned(), "sub".to_owned()]);
    assert_eq!(top.files, vec!["a.txt".to_owned(), "b.txt".to_owned()]);
    let sub = storage.listdir(Some(&name(&format!("{dir}/sub"))?)).await?;
    assert_eq!(
        (sub.dirs, sub.files),
        (vec!["deeper".to_owned()], vec!["c.txt".to_owned()])
    );
    let root = storage.listdir(None).await?;
    assert!(root.dirs.contains(&dir), "root listing misses {dir}");
    let missing = storage
        .listdir(Some(&name(&format!("{dir}/missing"))?))
        .await?;
    assert!(missing.dirs.is_empty() && missing.files.is_empty());
    // A file is not a directory.
    let not_dir = storage
        .listdir(Some(&name(&format!("{dir}/a.txt"))?))
        .await?;
    assert!(not_dir.dirs.is_empty() && not_dir.files.is_empty());
    storage
        .delete(&name(&format!("{dir}/other/e.txt"))?)
        .await?;
    assert_eq!(
        storage.listdir(Some(&name(&dir)?)).await?.dirs,
        vec!["sub".to_owned()]
    );
    remove_dir(storage, &dir).await?;
    assert!(
        !storage.listdir(None).await?.dirs.contains(&dir),
        "{dir} outlived its files"
    );
    Ok(())
}

/// Deleting a missing name succeeds; a deleted file is gone for every operation.
pub async fn delete_is_idempotent(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("delete");
    let missing = name(&format!("{dir}/never.txt"))?;
    assert!(!storage.delete(&missing).await?);
    let meta = storage.save(&format!("{dir}/gone.txt"), "x").await?;
    assert!(storage.delete(&meta.name).await?);
    assert!(!storage.delete(&meta.name).await?);
    assert!(!storage.exists(meta.name.as_str()).await?);
    let kept = storage.save(&format!("{dir}/kept.txt"), "k").await?;
    assert!(matches!(
        storage.metadata(&meta.name).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        storage.open(&meta.name, None).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        storage.read_to_bytes(meta.name.as_str()).await,
        Err(Error::NotFound { .. })
    ));
    // A file is not a directory: nothing is stored under it.
    let under_file = name(&format!("{}/child.txt", kept.name))?;
    assert!(matches!(
        storage.metadata(&under_file).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        storage.open(&under_file, None).await,
        Err(Error::NotFound { .. })
    ));
    assert!(!storage.delete(&under_file).await?);
    // The name is free again and gets no suffix.
    assert_eq!(storage.save(meta.name.as_str(), "y").await?.name, meta.name);
    remove_dir(storage, &dir).await
}

/// Metadata: size, SHA-256, strong ETag, content type, times; `open` reports the same version.
pub async fn metadata_and_checksum(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("meta");
    let caps = storage.capabilities();
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
    let body = b"{\"hello\": \"world\"}";
    let saved = storage
        .save_with(
            &format!("{dir}/data.bin"),
            &body[..],
            &SaveOptions::new().content_type("application/json"),
        )
        .await?;
    assert_eq!(saved.sha256, Some(sha256(body)));
    assert_eq!(saved.sha256_hex(), Some(hex::encode(sha256(body))));
    assert_eq!(saved.content_type.as_deref(), Some("application/json"));
    let meta = storage.metadata(&saved.name).await?;
    assert_eq!(
        (meta.name.clone(), meta.size),
        (saved.name.clone(), body.len() as u64)
    );
    assert_eq!(meta.etag, saved.etag);
    assert!(
        meta.etag.starts_with('"') && meta.etag.ends_with('"') && meta.etag.len() > 2,
        "{}",
        meta.etag
    );
    assert!(meta.modified >= before && meta.created <= meta.modified);
    if caps.stored_checksum {
        assert_eq!(meta.sha256, saved.sha256);
    }
    if caps.stored_content_type {
        assert_eq!(meta.content_type.as_deref(), Some("application/json"));
    }
    let guessed = storage.save(&format!("{dir}/page.html"), "<p>").await?;
    assert_eq!(
        storage
            .metadata(&guessed.name)
            .await?
            .content_type
            .as_deref(),
        Some("text/html")
    );
    let opened = storage.open(&saved.name, None).await?;
    assert_eq!(opened.meta.etag, meta.etag);
    assert_eq!(opened.meta.size, meta.size);
    // Same content under another name: the checksum agrees.
    let twin = storage.save(&format!("{dir}/twin.bin"), &body[..]).await?;
    assert_eq!(twin.sha256, saved.sha256);
    remove_dir(storage, &dir).await
}

fn failing_stream(good: &'static [u8]) -> ByteStream {
    let items: Vec<Result<Bytes>> = vec![
        Ok(Bytes::from_static(good)),
        Err(Error::TooLarge {
            limit: good.len() as u64,
        }),
    ];
    Box::pin(futures::stream::iter(items))
}

/// A content stream that fails half-way stores nothing and leaves an existing file intact.
pub async fn failed_upload_stores_nothing(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("failed");
    let result = storage
        .save(&format!("{dir}/partial.bin"), failing_stream(b"half of it"))
        .await;
    assert!(matches!(result, Err(Error::TooLarge { .. })), "{result:?}");
    assert!(!storage.exists(format!("{dir}/partial.bin")).await?);
    let listing = storage.listdir(Some(&name(&dir)?)).await?;
    assert!(
        listing.files.is_empty() && listing.dirs.is_empty(),
        "{listing:?}"
    );
    let kept = storage.save(&format!("{dir}/kept.txt"), "original").await?;
    let overwrite = SaveOptions::new().overwrite(true);
    let result = storage
        .save_with(
            kept.name.as_str(),
            failing_stream(b"replacement"),
            &overwrite,
        )
        .await;
    assert!(matches!(result, Err(Error::TooLarge { .. })), "{result:?}");
    assert_eq!(
        storage.read_to_bytes(kept.name.as_str()).await?,
        Bytes::from_static(b"original")
    );
    let listing = storage.listdir(Some(&name(&dir)?)).await?;
    assert_eq!(listing.files, vec!["kept.txt".to_owned()]);
    remove_dir(storage, &dir).await
}

/// `copy` streams a file to a new name and refuses a taken one.
pub async fn copy_to_new_name(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("copy");
    let source = storage.save(&format!("{dir}/a.txt"), "copy me").await?;
    let copied = storage
        .copy(source.name.as_str(), &format!("{dir}/sub/b.txt"))
        .await?;
    assert_eq!(copied.name.as_str(), format!("{dir}/sub/b.txt"));
    assert_eq!(copied.sha256, source.sha256);
    assert_eq!(
        storage.read_to_bytes(copied.name.as_str()).await?,
        Bytes::from_static(b"copy me")
    );
    let again = storage
        .copy(source.name.as_str(), copied.name.as_str())
        .await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );
    let missing = storage
        .copy(&format!("{dir}/none.txt"), &format!("{dir}/c.txt"))
        .await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
    remove_dir(storage, &dir).await
}

/// Private files round-trip where supported, and are refused (storing nothing) where not.
pub async fn visibility(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("visibility");
    let default = storage.save(&format!("{dir}/default.txt"), "d").await?;
    assert_eq!(default.visibility, storage.default_visibility());
    assert_eq!(
        storage.metadata(&default.name).await?.visibility,
        storage.default_visibility()
    );
    let public_options = SaveOptions::new().visibility(Visibility::Public);
    let public = storage
        .save_with(&format!("{dir}/public.txt"), "p", &public_options)
        .await?;
    assert_eq!(
        storage.metadata(&public.name).await?.visibility,
        Visibility::Public
    );
    let private = SaveOptions::new().visibility(Visibility::Private);
    let result = storage
        .save_with(&format!("{dir}/private.txt"), "secret", &private)
        .await;
    if storage.capabilities().private_files {
        let meta = result?;
        assert_eq!(meta.visibility, Visibility::Private);
        assert_eq!(
            storage.metadata(&meta.name).await?.visibility,
            Visibility::Private
        );
    } else {
        assert!(
            matches!(result, Err(Error::NotSupported { .. })),
            "{result:?}"
        );
        assert!(!storage.exists(format!("{dir}/private.txt")).await?);
    }
    remove_dir(storage, &dir).await
}

/// `url` percent-encodes the name and never yields a scheme-relative URL.
pub async fn url_for_saved_file(storage: &dyn Storage) -> Result<()> {
    let dir = unique_dir("url");
    let public = SaveOptions::new()
        .keep_name(true)
        .visibility(Visibility::Public);
    let meta = storage
        .save_with(&format!("{dir}/a b#c.txt"), "u", &public)
        .await?;
    match storage.url(&meta.name, None).await {
        Ok(url) => {
            assert!(url.contains(&format!("{dir}/a%20b%23c.txt")), "{url}");
            assert!(!url.starts_with("//") && !url.contains('?'), "{url}");
        }
        Err(Error::NotSupported { .. }) => {}
        Err(e) => return Err(e),
    }
    // A private file's URL is signed, or refused where the storage has no signer.
    if storage.capabilities().private_files {
        let private = SaveOptions::new().visibility(Visibility::Private);
        let secret = storage
            .save_with(&format!("{dir}/secret.txt"), "s", &private)
            .await?;
        match storage
            .url(&secret.name, Some(std::time::Duration::from_secs(60)))
            .await
        {
            // Our own signed URLs (`?expires=..&signature=..`), or a service's presigned
            // ones (S3's `X-Amz-Expires`/`X-Amz-Signature`, Azure's `se`/`sig`).
            Ok(url) => {
                let query = url.split_once('?').map(|(_, q)| q.to_lowercase());
                assert!(
                    query.is_some_and(|q| (q.contains("expires=") || q.contains("se="))
                        && (q.contains("signature=") || q.contains("sig="))),
                    "{url}"
                );
            }
            Err(Error::NotSupported { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    remove_dir(storage, &dir).await
}
