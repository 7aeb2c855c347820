//! The single-row layouts shared with Django apps, on SQLite, PostgreSQL and MySQL/MariaDB:
//! django-binary-database-files' table (created from the DDL Django's `sqlmigrate` prints, and
//! by Django itself in the interoperability test) and a hand-made table in the shape of the old
//! django-storages `DatabaseStorage`.
//!
//! The interoperability test runs real Django with the real package: `DBFILES_DJANGO_PYTHON`
//! names a Python that has them (scripts/test sets it up with scripts/django-venv). Without it
//! that test says it was skipped; under CI=true it fails instead.

// Test code: slicing known-size test data and indexing JSON answers fails loudly, as it should.
#![allow(
    clippy::print_stderr,
    clippy::cast_possible_truncation,
    clippy::indexing_slicing
)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use bytes::Bytes;
use common::RawDb;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use storage_core::{
    ByteRange, Error, MirroredStorage, Name, Result, SaveOptions, Storage, StorageExt,
};
use storage_diesel::{connect_url, DjangoContentHasher};

const DJANGO: &str = "layout=binary-database-files";

fn with_params(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

fn err(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::backend("test", what.to_owned(), e)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

/// The old django-storages `DatabaseStorage` table, as its README configured it.
fn old_django_storages_table(db: &dyn RawDb, blob_type: &str, unique: bool) -> Result<()> {
    let key = if unique { " PRIMARY KEY" } else { "" };
    let q = if db.url().starts_with("mysql") {
        '`'
    } else {
        '"'
    };
    db.exec(&format!(
        "CREATE TABLE {q}FILES{q} ({q}FILE_NAME{q} VARCHAR(255) NOT NULL{key}, {q}BLOB{q} {blob_type}, {q}SIZE{q} INTEGER)"
    ))
}

const TABLE: &str =
    "layout=table&table=FILES&name_column=FILE_NAME&blob_column=BLOB&size_column=SIZE";

async fn django_layout(db: &dyn RawDb) -> Result<()> {
    let url = with_params(db.url(), DJANGO);
    let any = connect_url(&url, common::options()).await?;
    // A single-row layout: it says how large a file it takes.
    assert!(
        any.storage().capabilities().max_file_size.is_some(),
        "{any:?}"
    );
    storage_conformance::run_all_shared(any.storage()).await?;
    let storage = any.storage();
    rows_look_like_djangos(&storage, db).await?;
    rows_no_name_can_reach_are_not_listed(&storage, db).await?;
    names_are_bound_never_formatted(&storage, db).await?;
    ranges_come_from_slices(&storage).await?;
    replaced_while_read_fails_instead_of_mixing(&storage).await?;
    long_names_shorten_to_the_column(&storage).await?;
    // Migrating again changes nothing.
    assert!(any.migrate().await?.is_empty());
    Ok(())
}

async fn rows_look_like_djangos(storage: &dyn Storage, db: &dyn RawDb) -> Result<()> {
    let body = pattern(300_000, 3);
    let meta = storage
        .save("legacy/shape.bin", Bytes::from(body.clone()))
        .await?;
    let hash = DjangoContentHasher::of(&body);
    let name = meta.name.as_str();
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) AS n FROM binary_database_files_file WHERE name = '{name}' AND size = {} AND content_hash = '{hash}'",
            body.len()
        ))?,
        1
    );
    let read = storage.metadata(&meta.name).await?;
    assert_eq!(read.django_content_hash.as_deref(), Some(hash.as_str()));
    assert_eq!(read.sha256, Some(Sha256::digest(&body).into()));
    assert_eq!(read.etag, meta.etag);
    // Django stores NULL for empty content; so do we.
    let empty = storage.save("legacy/empty.txt", "").await?;
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) AS n FROM binary_database_files_file WHERE name = '{}' AND content_hash IS NULL AND size = 0",
            empty.name
        ))?,
        1
    );
    // created_datetime is now, in UTC, to the second.
    let created = storage.metadata(&meta.name).await?.modified;
    let age = std::time::SystemTime::now()
        .duration_since(created)
        .unwrap_or_default();
    assert!(age.as_secs() < 60, "created_datetime is {age:?} old");
    storage.delete(&meta.name).await?;
    storage.delete(&empty.name).await?;
    Ok(())
}

/// Rows Django (or anything else) wrote that no name can reach as they stand are not listed,
/// so a walk never hands out a name that stands for another row.
async fn rows_no_name_can_reach_are_not_listed(
    storage: &dyn Storage,
    db: &dyn RawDb,
) -> Result<()> {
    let keep = SaveOptions::new().keep_name(true);
    let ok = storage.save_with("odd/ok.txt", "ok", &keep).await?;
    // `odd\sneaky.txt` at the root, written as each database reads a backslash in a literal.
    let sneaky = if db.url().starts_with("mysql") {
        "odd\\\\sneaky.txt"
    } else {
        "odd\\sneaky.txt"
    };
    let odd = ["odd//c.txt", "odd/./d.txt", sneaky];
    for name in odd {
        db.exec(&format!(
            "INSERT INTO binary_database_files_file (name, size, content, created_datetime, content_hash) \
             VALUES ('{name}', 0, '', CURRENT_TIMESTAMP, NULL)"
        ))?;
    }
    storage_conformance::lists_only_reachable_names(storage, "odd").await?;
    for name in odd {
        db.exec(&format!(
            "DELETE FROM binary_database_files_file WHERE name = '{name}'"
        ))?;
    }
    storage.delete(&ok.name).await?;
    Ok(())
}

async fn names_are_bound_never_formatted(storage: &dyn Storage, db: &dyn RawDb) -> Result<()> {
    let keep = SaveOptions::new().keep_name(true);
    let evil = "legacy/x'); DROP TABLE binary_database_files_file; --.txt";
    let saved = storage.save_with(evil, "still here", &keep).await?;
    assert_eq!(saved.name.as_str(), evil);
    assert_eq!(storage.read_to_bytes(evil).await?.as_ref(), b"still here");
    assert!(db.count("SELECT COUNT(*) AS n FROM binary_database_files_file")? >= 1);
    assert!(storage.delete(&saved.name).await?);
    Ok(())
}

async fn ranges_come_from_slices(storage: &dyn Storage) -> Result<()> {
    let body = pattern(3 * 1024 * 1024 + 17, 9);
    let meta = storage
        .save("legacy/big.bin", Bytes::from(body.clone()))
        .await?;
    for (start, end) in [
        (0, 10),
        (1_048_570, 1_048_590),
        (2_500_000, 3_145_745),
        (3_145_700, 3_145_745),
    ] {
        let opened = storage
            .open(&meta.name, Some(ByteRange::new(start, end)))
            .await?;
        let got = storage_core::collect_bytes(opened.stream).await?;
        assert_eq!(
            got.as_ref(),
            &body[start as usize..end as usize],
            "{start}..{end}"
        );
    }
    let opened = storage.open(&meta.name, Some(ByteRange::Suffix(5))).await?;
    assert_eq!(
        storage_core::collect_bytes(opened.stream).await?.as_ref(),
        &body[body.len() - 5..]
    );
    assert_eq!(
        storage.read_to_bytes(meta.name.as_str()).await?.as_ref(),
        &body[..]
    );
    storage.delete(&meta.name).await?;
    Ok(())
}

async fn replaced_while_read_fails_instead_of_mixing(storage: &dyn Storage) -> Result<()> {
    let old = pattern(3 * 1024 * 1024, 1);
    let meta = storage
        .save("legacy/moving.bin", Bytes::from(old.clone()))
        .await?;
    let mut opened = storage.open(&meta.name, None).await?;
    let first = opened.stream.try_next().await?.unwrap_or_default();
    assert_eq!(&first[..], &old[..first.len()]);
    storage
        .save_with(
            meta.name.as_str(),
            Bytes::from(pattern(3 * 1024 * 1024, 2)),
            &SaveOptions::new().overwrite(true),
        )
        .await?;
    let rest: Result<Vec<Bytes>> = opened.stream.try_collect().await;
    assert!(
        rest.is_err(),
        "a read across an overwrite must fail, not mix versions"
    );
    storage.delete(&meta.name).await?;
    Ok(())
}

async fn long_names_shorten_to_the_column(storage: &dyn Storage) -> Result<()> {
    let long = format!("legacy/{}.txt", "n".repeat(300));
    let saved = storage.save(&long, "x").await?;
    assert_eq!(saved.name.char_len(), 255);
    assert!(saved.name.as_str().ends_with(".txt"));
    let refused = storage
        .put_overwrite(
            &Name::new(&long)?,
            storage_core::bytes_stream("x"),
            &storage_core::PutOptions::default(),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidName { .. })),
        "{refused:?}"
    );
    storage.delete(&saved.name).await?;
    Ok(())
}

async fn table_layout(db: &dyn RawDb, blob_type: &str) -> Result<()> {
    // A missing table is a clear error, not a failure at the first save.
    let missing = connect_url(
        &with_params(db.url(), TABLE),
        common::options().migrate_on_connect(false),
    )
    .await;
    let message = missing.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("table 'FILES' not found"), "{message}");
    // Without a unique name column, two writers could both store one name: refused.
    old_django_storages_table(db, blob_type, false)?;
    let loose = connect_url(
        &with_params(db.url(), TABLE),
        common::options().migrate_on_connect(false),
    )
    .await;
    let message = loose.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("not unique"), "{message}");
    let q = if db.url().starts_with("mysql") {
        '`'
    } else {
        '"'
    };
    assert_eq!(
        db.count(&format!("SELECT COUNT(*) AS n FROM {q}FILES{q}"))?,
        0,
        "the probe left rows"
    );
    db.exec(&format!("DROP TABLE {q}FILES{q}"))?;
    old_django_storages_table(db, blob_type, true)?;
    let any = connect_url(
        &with_params(db.url(), TABLE),
        common::options().migrate_on_connect(false),
    )
    .await?;
    storage_conformance::run_all_shared(any.storage()).await?;
    let storage = any.storage();
    let saved = storage.save("old/report.csv", "a,b\n1,2\n").await?;
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) AS n FROM {q}FILES{q} WHERE {q}FILE_NAME{q} = 'old/report.csv' AND {q}SIZE{q} = 8"
        ))?,
        1
    );
    replaced_while_read_fails_instead_of_mixing(&storage).await?;
    storage.delete(&saved.name).await?;
    // A table layout created by migrate: the name is the primary key.
    let created = with_params(
        db.url(),
        "layout=table&table=made_here&name_column=path&blob_column=data",
    );
    let any = connect_url(&created, common::options()).await?;
    let meta = any.storage().save("made/here.txt", "made").await?;
    assert_eq!(
        any.storage()
            .read_to_bytes(meta.name.as_str())
            .await?
            .as_ref(),
        b"made"
    );
    Ok(())
}

// --- Django itself ----------------------------------------------------------------------------

fn django_python() -> Option<String> {
    common::required_env(
        "DBFILES_DJANGO_PYTHON",
        "run scripts/django-venv and set it to the Python it prints (scripts/test does) to run \
         Django against our tables",
    )
}

fn interop(
    python: &str,
    db: &str,
    media_root: Option<&std::path::Path>,
    command: &str,
    input: &serde_json::Value,
) -> Result<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/django/interop.py");
    let mut cmd = Command::new(python);
    cmd.arg(script).arg("--db").arg(db);
    if let Some(root) = media_root {
        cmd.arg("--media-root").arg(root);
    }
    let mut child = cmd
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err("spawn python", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.to_string().as_bytes())
            .map_err(|e| err("stdin", e))?;
    }
    let out = child.wait_with_output().map_err(|e| err("python", e))?;
    assert!(
        out.status.success(),
        "interop.py {command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).map_err(|e| err("json", e))
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Django creates the table and saves files; we read them. We save files (mirrored to disk);
/// Django reads them, agrees on every `content_hash`, and finds our mirror fresh.
async fn django_reads_ours_and_we_read_djangos(db: &dyn RawDb, python: &str) -> Result<()> {
    let reset = interop(python, db.url(), None, "reset", &serde_json::json!(null))?;
    assert_eq!(reset["ok"], true);
    let from_django: Vec<(&str, Vec<u8>)> = vec![
        ("django/hello.txt", b"hello from django".to_vec()),
        (
            "django/bytes 0-255.bin",
            (0..=255u8).cycle().take(4096).collect(),
        ),
        ("django/empty.bin", Vec::new()),
        ("django/café 😀.txt", "non-ASCII ✓".as_bytes().to_vec()),
        ("django/big.bin", pattern(2_500_000, 5)),
    ];
    let input: Vec<serde_json::Value> = from_django
        .iter()
        .map(|(name, body)| serde_json::json!({"name": name, "content_b64": b64(body)}))
        .collect();
    let written = interop(python, db.url(), None, "write", &serde_json::json!(input))?;
    let any = connect_url(
        &with_params(db.url(), DJANGO),
        common::options().migrate_on_connect(false),
    )
    .await?;
    let storage = any.storage();
    for ((requested, body), row) in from_django
        .iter()
        .zip(written.as_array().into_iter().flatten())
    {
        let name = row["name"].as_str().unwrap_or_default();
        assert_eq!(name, *requested);
        let meta = storage.metadata(&Name::new(name)?).await?;
        assert_eq!(meta.size, body.len() as u64, "{name}");
        assert_eq!(meta.sha256, Some(Sha256::digest(body).into()), "{name}");
        assert_eq!(
            storage.read_to_bytes(name).await?.as_ref(),
            &body[..],
            "{name}"
        );
        // Django's hash, as stored by Django, is the one we compute.
        let stored = row["content_hash"].as_str();
        let ours = (!body.is_empty()).then(|| DjangoContentHasher::of(body));
        assert_eq!(stored, ours.as_deref(), "{name}");
        assert_eq!(meta.django_content_hash.as_deref(), stored, "{name}");
    }
    // A name Django took gets an alternative from us, as Django would give one.
    let again = storage.save("django/hello.txt", "ours").await?;
    assert_ne!(again.name.as_str(), "django/hello.txt");

    let media = tempfile::tempdir().map_err(|e| err("tempdir", e))?;
    let mirrored = MirroredStorage::new(storage.clone(), media.path())?;
    let from_us: Vec<(&str, Vec<u8>)> = vec![
        (
            "rust/report.pdf",
            b"%PDF-1.7 \xe2\x9c\x93 binary \x00\xff".to_vec(),
        ),
        (
            "rust/sub/dir/résumé 2024.txt",
            "naïve café".as_bytes().to_vec(),
        ),
        ("rust/big.bin", pattern(3_000_000, 8)),
        ("rust/empty.txt", Vec::new()),
    ];
    let keep = SaveOptions::new().keep_name(true);
    let mut expected = Vec::new();
    for (name, body) in &from_us {
        let meta = mirrored
            .save_with(name, Bytes::from(body.clone()), &keep)
            .await?;
        assert_eq!(meta.name.as_str(), *name);
        expected
            .push(serde_json::json!({"name": name, "sha256": hex::encode(Sha256::digest(body))}));
    }
    assert_eq!(mirrored.failures(), 0, "{:?}", mirrored.last_failure());
    let checked = interop(
        python,
        db.url(),
        Some(media.path()),
        "read",
        &serde_json::json!(expected),
    )?;
    for (row, (name, body)) in checked.as_array().into_iter().flatten().zip(&from_us) {
        for key in ["found", "content_ok", "hash_ok", "size_ok", "exists"] {
            assert_eq!(row[key], true, "{name}: {key} in {row}");
        }
        // The package's is_fresh is false for empty files whatever is on disk (it stores no
        // hash for them); for every other file it must accept our mirror.
        assert_eq!(row["fresh"], !body.is_empty(), "{name}: {row}");
    }
    let reset = interop(python, db.url(), None, "reset", &serde_json::json!(null))?;
    assert_eq!(reset["ok"], true);
    Ok(())
}

// --- SQLite -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_django_layout() -> Result<()> {
    django_layout(&common::SqliteDb::new()?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_table_layout() -> Result<()> {
    table_layout(&common::SqliteDb::new()?, "BLOB").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_django_interoperability() -> Result<()> {
    let Some(python) = django_python() else {
        return Ok(());
    };
    django_reads_ours_and_we_read_djangos(&common::SqliteDb::new()?, &python).await
}

// --- PostgreSQL -------------------------------------------------------------------------------

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_django_layout() -> Result<()> {
    let Some(db) = common::pg_db()? else {
        return Ok(());
    };
    django_layout(&db).await
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_table_layout() -> Result<()> {
    let Some(db) = common::pg_db()? else {
        return Ok(());
    };
    table_layout(&db, "BYTEA").await
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_django_interoperability() -> Result<()> {
    let Some(db) = common::pg_db()? else {
        return Ok(());
    };
    let Some(python) = django_python() else {
        return Ok(());
    };
    django_reads_ours_and_we_read_djangos(&db, &python).await
}

// --- MySQL / MariaDB --------------------------------------------------------------------------

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_django_layout() -> Result<()> {
    let Some(db) = common::mysql_db()? else {
        return Ok(());
    };
    django_layout(&db).await?;
    // MySQL's default collation is case-insensitive: Django's unique index treats `A.txt` and
    // `a.txt` as one name. Lookups still match exactly, and a clash gets an alternative name.
    let any = connect_url(&with_params(db.url(), DJANGO), common::options()).await?;
    let storage = any.storage();
    let upper = storage.save("case/A.txt", "upper").await?;
    assert!(!storage.exists("case/a.txt").await?);
    let lower = storage.save("case/a.txt", "lower").await?;
    assert_ne!(lower.name.as_str(), "case/a.txt");
    assert_eq!(
        storage.read_to_bytes(upper.name.as_str()).await?.as_ref(),
        b"upper"
    );
    assert_eq!(
        storage.read_to_bytes(lower.name.as_str()).await?.as_ref(),
        b"lower"
    );
    Ok(())
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_table_layout() -> Result<()> {
    let Some(db) = common::mysql_db()? else {
        return Ok(());
    };
    table_layout(&db, "LONGBLOB").await
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_django_interoperability() -> Result<()> {
    let Some(db) = common::mysql_db()? else {
        return Ok(());
    };
    let Some(python) = django_python() else {
        return Ok(());
    };
    django_reads_ours_and_we_read_djangos(&db, &python).await
}
