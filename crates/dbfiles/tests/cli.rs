//! The `dbfiles` binary, run as a user runs it: against a SQLite file in a temporary directory,
//! and against the real PostgreSQL and MariaDB when their URLs are configured (scripts/test).

// Test code: failing loudly is the point, and the data sizes are small.
#![allow(
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::Serve;

struct Cli {
    storage: String,
    dir: tempfile::TempDir,
}

impl Cli {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = format!("sqlite://{}/media.db", dir.path().display());
        Self { storage, dir }
    }

    fn with_storage(storage: String) -> Self {
        Self {
            storage,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dbfiles"))
            .args(args)
            .env("DBFILES_STORAGE", &self.storage)
            .current_dir(self.dir.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dbfiles");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input)
                .expect("write stdin");
        }
        child.wait_with_output().expect("dbfiles ran")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "dbfiles {args:?} failed ({:?}): {} / stdout {}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "dbfiles {args:?} should have failed");
        assert!(out.stdout.is_empty(), "a failed command printed to stdout");
        let err = String::from_utf8(out.stderr).expect("utf-8 stderr");
        assert_eq!(err.lines().count(), 1, "errors are one line: {err}");
        assert!(err.starts_with("dbfiles: error: "), "{err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
        err
    }

    fn write(&self, name: &str, content: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write local file");
        path.display().to_string()
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// put, get, ls, stat, rm on one storage.
fn round_trip(cli: &Cli) {
    cli.ok(&["migrate"]);
    let big = pattern(3 * 1024 * 1024 + 17);
    let local = cli.write("video.bin", &big);
    assert_eq!(
        cli.ok(&["put", &local, "clips/video.bin"]).trim(),
        "clips/video.bin"
    );
    let out = cli.dir.path().join("back.bin");
    cli.ok(&["get", "clips/video.bin", &out.display().to_string()]);
    assert_eq!(std::fs::read(&out).expect("read back"), big);
    // To stdout.
    let stdout = cli.run(&["get", "clips/video.bin"]);
    assert!(stdout.status.success());
    assert_eq!(stdout.stdout, big);
    // A taken name gets Django's suffix; --overwrite replaces.
    let small = cli.write("note.txt", b"first");
    assert_eq!(
        cli.ok(&["put", &small, "clips/note.txt"]).trim(),
        "clips/note.txt"
    );
    let second = cli.ok(&["put", &small, "clips/note.txt"]);
    let second = second.trim();
    assert!(
        second.starts_with("clips/note_")
            && second.ends_with(".txt")
            && second.len() == "clips/note_XXXXXXX.txt".len(),
        "{second}"
    );
    let newer = cli.write("newer.txt", b"second version");
    assert_eq!(
        cli.ok(&["put", &newer, "clips/note.txt", "--overwrite"])
            .trim(),
        "clips/note.txt"
    );
    assert_eq!(
        cli.run(&["get", "clips/note.txt", "-"]).stdout,
        b"second version"
    );
    // stdin, with a type and private.
    let piped = cli.run_with_stdin(
        &[
            "put",
            "-",
            "piped/data.bin",
            "--content-type",
            "application/x-demo",
            "--private",
        ],
        Some(b"from stdin"),
    );
    assert!(
        piped.status.success(),
        "{:?}: {}",
        piped.status,
        String::from_utf8_lossy(&piped.stderr)
    );
    let stat: serde_json::Value =
        serde_json::from_str(&cli.ok(&["stat", "piped/data.bin", "--json"])).expect("json");
    let keys: Vec<&str> = stat
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "content_type",
            "created",
            "modified",
            "name",
            "public",
            "sha256",
            "size"
        ]
    );
    assert_eq!(stat["size"], 10);
    assert_eq!(stat["public"], false);
    assert_eq!(stat["content_type"], "application/x-demo");
    assert_eq!(stat["sha256"].as_str().map(str::len), Some(64));
    assert!(cli
        .ok(&["stat", "clips/video.bin"])
        .contains(&format!("size:         {}", big.len())));
    // ls: directories first, then files.
    assert_eq!(cli.ok(&["ls"]), "clips/\npiped/\n");
    let listing = cli.ok(&["ls", "clips"]);
    assert_eq!(listing.lines().count(), 3, "{listing}");
    let long = cli.ok(&["ls", "clips/", "--long"]);
    assert!(
        long.lines()
            .any(|l| l.contains(&big.len().to_string()) && l.ends_with("video.bin")),
        "{long}"
    );
    // rm, and rm again.
    cli.ok(&["rm", "clips/video.bin"]);
    assert!(cli.fails(&["rm", "clips/video.bin"]).contains("not found"));
    assert!(cli
        .fails(&["get", "clips/video.bin", &out.display().to_string()])
        .contains("not found"));
}

#[test]
fn sqlite_round_trip() {
    round_trip(&Cli::sqlite());
}

#[test]
fn sqlite_is_the_default_and_is_created_on_first_use() {
    let cli = Cli::with_storage(String::new());
    let local = cli.write("a.txt", b"a");
    let out = Command::new(env!("CARGO_BIN_EXE_dbfiles"))
        .args(["put", &local])
        .env_remove("DBFILES_STORAGE")
        .current_dir(cli.dir.path())
        .output()
        .expect("ran");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "a.txt");
    assert!(
        cli.dir.path().join("media.db").exists(),
        "the default storage is sqlite://media.db"
    );
}

#[test]
fn errors_are_one_clear_line() {
    let cli = Cli::sqlite();
    let local = cli.write("a.txt", b"a");
    assert!(cli
        .fails(&["get", "missing.txt"])
        .contains("file not found: 'missing.txt'"));
    assert!(cli
        .fails(&["put", &local, "../escape.txt", "--keep-name"])
        .contains("suspicious file name"));
    assert!(cli
        .fails(&["put", &local, "???"])
        .contains("invalid file name"));
    assert!(cli.fails(&["put", "-"]).contains("give a NAME"));
    assert!(cli
        .fails(&["put", "/nonexistent/local.txt", "x.txt"])
        .contains("cannot use '/nonexistent/local.txt'"));
    assert!(cli
        .fails(&["--storage", "sqlite:///nonexistent-dir/m.db", "ls"])
        .contains("directory does not exist"));
    assert!(cli
        .fails(&["--storage", "gopher://x/y", "ls"])
        .contains("invalid database URL"));
    // An interrupted or failed get leaves no local file.
    let target = cli.dir.path().join("out.bin");
    cli.fails(&["get", "missing.txt", &target.display().to_string()]);
    assert!(!target.exists() && !Path::new(&format!("{}.dbfiles-part", target.display())).exists());
}

#[test]
fn unreachable_server_names_the_database_not_the_password() {
    let cli = Cli::sqlite();
    let err = cli.fails(&[
        "--storage",
        "postgres://app:s3cretpw@127.0.0.1:1/files",
        "ls",
    ]);
    assert!(!err.contains("s3cretpw"), "{err}");
    if cfg!(feature = "postgres") {
        assert!(
            err.contains("postgres database 'files' at 127.0.0.1:1"),
            "{err}"
        );
    } else {
        assert!(err.contains("needs its cargo feature"), "{err}");
    }
    let err = cli.fails(&["--storage", "mysql://app:s3cretpw@127.0.0.1:1/files", "ls"]);
    assert!(!err.contains("s3cretpw"), "{err}");
    if cfg!(feature = "mysql") {
        assert!(
            err.contains("mysql database 'files' at 127.0.0.1:1"),
            "{err}"
        );
    }
}

#[test]
fn url_signs_private_files_with_the_secret_serve_checks() {
    let cli = Cli::sqlite();
    let local = cli.write("plan.pdf", b"%PDF plan");
    assert_eq!(cli.ok(&["put", &local]).trim(), "plan.pdf");
    let public = cli.write("open.txt", b"open");
    cli.ok(&["put", &public, "--public"]);
    // Private by default on a database; without a secret there is no URL to give.
    assert!(cli
        .fails(&["url", "plan.pdf"])
        .contains("private files without a URL signer"));
    assert_eq!(cli.ok(&["url", "open.txt"]).trim(), "/media/open.txt");
    let signed = cli.ok(&["--secret", "s3cret", "url", "plan.pdf", "--expires", "120"]);
    let signed = signed.trim().to_owned();
    assert!(
        signed.starts_with("/media/plan.pdf?expires=") && signed.contains("&signature="),
        "{signed}"
    );
    // Signed with a secret serve still accepts as a previous one.
    let server = Serve::start(
        &cli.storage,
        cli.dir.path(),
        &[],
        &[
            ("DBFILES_SECRET", "new secret"),
            ("DBFILES_OLD_SECRETS", "s3cret"),
        ],
    );
    let statuses = [
        server.get(&signed).0,
        server.get("/media/plan.pdf").0,
        server.get(&signed.replace("plan.pdf", "open.txt")).0,
    ];
    assert_eq!(statuses, [200, 403, 200], "signed, unsigned, public");
}

#[test]
fn load_dump_rehash_and_migrate_layout_can_be_run_again() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let cli = Cli::sqlite();
    let media = cli.dir.path().join("media");
    std::fs::create_dir_all(media.join("a/b")).expect("dirs");
    std::fs::write(media.join("one.txt"), b"one").expect("write");
    std::fs::write(media.join("a/two.txt"), b"two").expect("write");
    std::fs::write(media.join("a/b/big.bin"), pattern(300_000)).expect("write");
    let media_arg = media.display().to_string();
    assert_eq!(
        cli.ok(&["load", &media_arg]).trim(),
        "load: 3 copied (300006 bytes), 0 unchanged, 0 failed"
    );
    assert_eq!(
        cli.ok(&["load", &media_arg]).trim(),
        "load: 0 copied (0 bytes), 3 unchanged, 0 failed"
    );
    std::fs::write(media.join("one.txt"), b"ONE!").expect("write");
    assert_eq!(
        cli.ok(&["load", &media_arg]).trim(),
        "load: 1 copied (4 bytes), 2 unchanged, 0 failed"
    );
    assert_eq!(cli.ok(&["ls", "a"]), "b/\ntwo.txt\n");

    let out = cli.dir.path().join("out");
    let out_arg = out.display().to_string();
    assert_eq!(
        cli.ok(&["dump", &out_arg]).trim(),
        "dump: 3 copied (300007 bytes), 0 unchanged, 0 failed"
    );
    for file in ["one.txt", "a/two.txt", "a/b/big.bin"] {
        assert_eq!(
            std::fs::read(out.join(file)).ok(),
            std::fs::read(media.join(file)).ok(),
            "{file}"
        );
    }
    assert!(!out.join(".dbfiles-staging").exists());
    assert_eq!(
        cli.ok(&["dump", &out_arg]).trim(),
        "dump: 0 copied (0 bytes), 3 unchanged, 0 failed"
    );
    std::fs::write(out.join("a/two.txt"), b"stale").expect("write");
    assert_eq!(
        cli.ok(&["dump", &out_arg]).trim(),
        "dump: 1 copied (3 bytes), 2 unchanged, 0 failed"
    );

    let copy = format!("sqlite://{}/copy.db", cli.dir.path().display());
    let migrate = ["migrate-layout", "--from", &cli.storage, "--to", &copy];
    assert_eq!(
        cli.ok(&migrate).trim(),
        "migrate-layout: 3 copied (300007 bytes), 0 unchanged, 0 failed"
    );
    assert_eq!(
        cli.ok(&migrate).trim(),
        "migrate-layout: 0 copied (0 bytes), 3 unchanged, 0 failed"
    );

    assert_eq!(
        cli.ok(&["rehash"]).trim(),
        "rehash: 3 checked, 0 mismatched, 0 without a recorded checksum"
    );
    // Damage one file's bytes under the storage: rehash finds it and fails.
    let path = cli.storage.trim_start_matches("sqlite://").to_owned();
    let mut conn = diesel::sqlite::SqliteConnection::establish(&path).expect("open the database");
    conn.batch_execute(
        "UPDATE storage_chunks SET data = X'00' WHERE file_id = (SELECT id FROM storage_files WHERE name = 'a/two.txt')",
    )
    .expect("damage");
    let out = cli.run(&["rehash"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("mismatch: a/two.txt") && stdout.contains("3 checked, 1 mismatched"),
        "{stdout}"
    );
    assert!(cli
        .fails(&["load", "/nonexistent-dir"])
        .contains("not found"));
}

/// Entries no stored name can hold are failures named on stderr, never skipped in silence:
/// a name that is not UTF-8, a backslash (read as `/`, it would load another file), a
/// directory with a control character (everything under it); the rest still loads.
#[test]
fn load_names_every_entry_it_cannot_take() {
    use std::os::unix::ffi::OsStrExt;
    let cli = Cli::sqlite();
    let media = cli.dir.path().join("media");
    std::fs::create_dir_all(media.join("bad\u{7}dir")).expect("dirs");
    std::fs::write(media.join("bad\u{7}dir/inside.txt"), b"x").expect("write");
    std::fs::write(media.join("good.txt"), b"good").expect("write");
    std::fs::write(media.join("back\\slash.txt"), b"b").expect("write");
    std::fs::write(
        media.join(std::ffi::OsStr::from_bytes(b"latin1-\xe9.txt")),
        b"l",
    )
    .expect("write");
    // Links are followed as the storage follows them: a dangling one is named.
    std::os::unix::fs::symlink(media.join("gone.txt"), media.join("dangling.txt")).expect("link");
    let out = cli.run(&["load", &media.display().to_string()]);
    assert!(!out.status.success(), "a partial load must fail");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "load: 1 copied (4 bytes), 0 unchanged, 4 failed"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (entry, reason) in [
        ("back\\slash.txt", "backslash"),
        ("latin1-", "not UTF-8"),
        ("bad\u{7}dir", "control character"),
        ("dangling.txt", "dangling link"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(entry) && l.contains("not loaded") && l.contains(reason)),
            "{entry}: {stderr}"
        );
    }
    assert_eq!(cli.ok(&["ls"]), "good.txt\n");
}

/// With a legacy table on the same database as the chunked one: cleanup with two referencing
/// tables, migrate-layout into django-binary-database-files' table (run twice), the mirror, and
/// the URL styles. `sql` runs statements on the storage's database.
fn maintenance_and_legacy_layouts(cli: &Cli, sql: &dyn Fn(&str)) {
    cli.ok(&["migrate"]);
    for (name, size) in [
        ("photos/kept.jpg", 10),
        ("photos/orphan.jpg", 20),
        ("invoices/1.pdf", 30),
        ("junk.tmp", 40),
    ] {
        let local = cli.write("upload.bin", &pattern(size));
        cli.ok(&["put", &local, name, "--keep-name", "--public"]);
    }
    sql("CREATE TABLE app_profile (id INTEGER PRIMARY KEY, photo VARCHAR(100) NOT NULL)");
    sql("INSERT INTO app_profile (id, photo) VALUES (1, 'photos/kept.jpg'), (2, '')");
    sql("CREATE TABLE billing_invoice (id INTEGER PRIMARY KEY, pdf VARCHAR(100) NULL)");
    sql("INSERT INTO billing_invoice (id, pdf) VALUES (1, 'invoices/1.pdf'), (2, NULL)");
    // No column declared or given: every file would look unreferenced, so nothing runs.
    let err = cli.fails(&["cleanup"]);
    assert!(err.contains("no referencing column"), "{err}");
    // Fresh files may belong to rows not saved yet: left alone by default.
    let both = "columns: app_profile.photo, billing_invoice.pdf";
    assert_eq!(
        cli.ok(&[
            "cleanup",
            "--reference",
            "app_profile.photo",
            "--reference",
            "billing_invoice.pdf"
        ])
        .trim(),
        format!("cleanup: deleted 0 unreferenced files (0 bytes); {both}")
    );
    // One column declared in the database, one given.
    assert_eq!(
        cli.ok(&["references", "add", "app_profile.photo"]),
        "app_profile.photo\n"
    );
    assert_eq!(cli.ok(&["references"]), "app_profile.photo\n");
    let args = [
        "cleanup",
        "--reference",
        "billing_invoice.pdf",
        "--older-than",
        "0",
    ];
    let dry: Vec<&str> = args.iter().copied().chain(["--dry-run"]).collect();
    assert_eq!(
        cli.ok(&dry),
        format!(
            "would delete: junk.tmp (40 bytes)\nwould delete: photos/orphan.jpg (20 bytes)\n\
             cleanup: would delete 2 unreferenced files (60 bytes); {both}\n"
        )
    );
    assert_eq!(
        cli.ok(&args).trim(),
        format!("cleanup: deleted 2 unreferenced files (60 bytes); {both}")
    );
    assert_eq!(
        cli.ok(&args).trim(),
        format!("cleanup: deleted 0 unreferenced files (0 bytes); {both}")
    );
    assert_eq!(cli.ok(&["references", "forget", "app_profile.photo"]), "");
    assert_eq!(cli.ok(&["ls", "photos"]), "kept.jpg\n");
    assert_eq!(cli.ok(&["ls"]), "invoices/\nphotos/\n");
    // Names of tables and columns are identifiers, never SQL.
    let err = cli.fails(&[
        "cleanup",
        "--reference",
        "app_profile.photo; DROP TABLE app_profile",
    ]);
    assert!(err.contains("not TABLE.COLUMN"), "{err}");
    assert!(cli
        .fails(&["cleanup", "--reference", "missing_table.col"])
        .contains("backend failure"));

    // Into django-binary-database-files' table on the same database, checksums verified.
    let separator = if cli.storage.contains('?') { '&' } else { '?' };
    let django = format!("{}{separator}layout=binary-database-files", cli.storage);
    let migrate = ["migrate-layout", "--from", &cli.storage, "--to", &django];
    assert_eq!(
        cli.ok(&migrate).trim(),
        "migrate-layout: 2 copied (40 bytes), 0 unchanged, 0 failed"
    );
    assert_eq!(
        cli.ok(&migrate).trim(),
        "migrate-layout: 0 copied (0 bytes), 2 unchanged, 0 failed"
    );
    let legacy = Cli::with_storage(django);
    assert_eq!(legacy.ok(&["ls"]), "invoices/\nphotos/\n");
    assert_eq!(
        legacy.ok(&["rehash"]).trim(),
        "rehash: 2 checked, 0 mismatched, 0 without a recorded checksum"
    );
    let stat = legacy.ok(&["stat", "photos/kept.jpg", "--json"]);
    assert!(
        stat.contains("\"size\":10") || stat.contains("\"size\": 10"),
        "{stat}"
    );
    // A private file cannot go into a table without a visibility column: refused, nothing stored.
    let local = cli.write("secret.txt", b"secret");
    let err = legacy.fails(&["put", &local, "secret.txt", "--private"]);
    assert!(err.contains("private files"), "{err}");
    assert!(legacy.ok(&["ls"]).find("secret").is_none());

    // The mirror: a read exports the file with its hash beside it.
    let media = legacy.dir.path().join("media");
    std::fs::create_dir_all(&media).expect("media root");
    let media_arg = media.display().to_string();
    let got = legacy.ok(&["--mirror", &media_arg, "get", "invoices/1.pdf", "-"]);
    assert_eq!(got.as_bytes(), &pattern(30)[..]);
    assert_eq!(
        std::fs::read(media.join("invoices/1.pdf")).expect("mirrored"),
        pattern(30)
    );
    assert_eq!(
        std::fs::read_to_string(media.join("invoices/1.pdf.hash"))
            .expect("hash file")
            .len(),
        128,
        "the package's SHA-512 content hash"
    );
    assert!(legacy
        .fails(&["--mirror", "", "ls"])
        .contains("media root is empty"));

    // URL styles: the route, or the media URL, with an absolute base.
    assert_eq!(
        legacy.ok(&["url", "photos/kept.jpg"]).trim(),
        "/media/photos/kept.jpg"
    );
    assert_eq!(
        legacy
            .ok(&[
                "--media-url",
                "/static-media/",
                "--absolute-url",
                "https://cdn.example.com",
                "url",
                "photos/kept.jpg"
            ])
            .trim(),
        "https://cdn.example.com/static-media/photos/kept.jpg"
    );
}

#[test]
fn sqlite_maintenance_and_legacy_layouts() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let cli = Cli::sqlite();
    let path = cli.storage.trim_start_matches("sqlite://").to_owned();
    maintenance_and_legacy_layouts(&cli, &|statement| {
        let mut conn =
            diesel::sqlite::SqliteConnection::establish(&path).expect("open the database");
        conn.batch_execute(statement).expect(statement);
    });
}

#[test]
fn serve_answers_over_loopback_and_stops_on_ctrl_c() {
    let cli = Cli::sqlite();
    let local = cli.write("hello.txt", b"hello from serve");
    cli.ok(&["put", &local, "--public"]);
    let private = cli.write("private.txt", b"only through the page");
    cli.ok(&["put", &private]);
    for framework in ["axum", "actix", "rocket"] {
        let mut server = Serve::start(
            &cli.storage,
            cli.dir.path(),
            &["--framework", framework],
            &[],
        );
        let (status, body) = server.get("/media/hello.txt");
        assert_eq!(status, 200, "{framework}: {body}");
        assert_eq!(body, "hello from serve", "{framework}");
        // Without a configured secret the server signs with one of its own: the page's link to
        // a private file works, the bare path does not.
        let (_, page) = server.get("/");
        let link = page
            .split("href=\"")
            .filter_map(|rest| rest.split('"').next())
            .find(|href| href.starts_with("/media/private.txt?"))
            .unwrap_or_else(|| panic!("{framework}: no signed link in {page}"))
            .replace("&amp;", "&");
        assert_eq!(
            server.get(&link),
            (200, "only through the page".to_owned()),
            "{framework}"
        );
        assert_eq!(server.get("/media/private.txt").0, 403, "{framework}");
        // Ctrl-C stops it cleanly (bounded wait).
        assert!(
            server.interrupt(),
            "{framework}: serve did not stop on SIGINT"
        );
    }
}

/// Built without a server feature, the server tests do not exist: fine on a laptop, a failure
/// under CI (which must build with --all-features).
#[cfg(not(all(feature = "postgres", feature = "mysql", feature = "remote")))]
#[test]
fn server_suites_skipped() {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI must build dbfiles with --all-features"
    );
    eprintln!(
        "SKIPPED: built without the postgres, mysql or remote feature; run with --all-features"
    );
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn server(var: &str) -> Option<String> {
    storage_conformance::required_env(var, "scripts/test sets it")
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_round_trip() {
    let Some(admin) = server("DBFILES_TEST_POSTGRES_URL") else {
        return;
    };
    let schema = format!("dbfiles_cli_{}", rand::random::<u32>());
    sh("psql", &[&admin, "-qc", &format!("CREATE SCHEMA {schema}")]);
    let separator = if admin.contains('?') { '&' } else { '?' };
    let cli = Cli::with_storage(format!(
        "{admin}{separator}options=-c%20search_path%3D{schema}"
    ));
    // A server database is not migrated implicitly.
    assert!(cli.fails(&["ls"]).contains("postgres backend failure"));
    round_trip(&cli);
    sh(
        "psql",
        &[&admin, "-qc", &format!("CREATE SCHEMA {schema}_m")],
    );
    let maintenance = Cli::with_storage(format!(
        "{admin}{separator}options=-c%20search_path%3D{schema}_m"
    ));
    maintenance_and_legacy_layouts(&maintenance, &|statement| {
        sh(
            "psql",
            &[
                &admin,
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                &format!("SET search_path TO {schema}_m; {statement}"),
            ],
        );
    });
    sh(
        "psql",
        &[&admin, "-qc", &format!("DROP SCHEMA {schema}_m CASCADE")],
    );
    sh(
        "psql",
        &[&admin, "-qc", &format!("DROP SCHEMA {schema} CASCADE")],
    );
}

#[cfg(feature = "mysql")]
#[test]
fn mysql_round_trip() {
    let Some(admin) = server("DBFILES_TEST_MYSQL_URL") else {
        return;
    };
    let parsed = url::Url::parse(&admin).expect("mysql url");
    let database = format!("dbfiles_cli_{}", rand::random::<u32>());
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = parsed.port().unwrap_or(3306).to_string();
    let user = parsed.username().to_owned();
    let mysql = |sql: &str| {
        sh(
            "mariadb",
            &["-h", &host, "-P", &port, "-u", &user, "-e", sql],
        );
    };
    mysql(&format!("CREATE DATABASE {database}"));
    let mut url = parsed;
    url.set_path(&format!("/{database}"));
    let cli = Cli::with_storage(url.to_string());
    round_trip(&cli);
    mysql(&format!("DROP DATABASE {database}"));
    mysql(&format!("CREATE DATABASE {database}"));
    maintenance_and_legacy_layouts(&cli, &|statement| {
        sh(
            "mariadb",
            &[
                "-h", &host, "-P", &port, "-u", &user, "-D", &database, "-e", statement,
            ],
        );
    });
    mysql(&format!("DROP DATABASE {database}"));
}

/// Every command on a remote storage, as a user runs them with a storage URL: put (file and
/// stdin), get, ls, stat, url, rm, load, dump, sweep, and cleanup with the rows in an app's
/// SQLite database. `private_files`: the service keeps private files (object stores).
#[cfg(feature = "remote")]
fn remote_round_trip(storage: String, private_files: bool) {
    let cli = Cli::with_storage(storage);
    assert!(cli.ok(&["migrate"]).contains("up to date"));
    let big = pattern(3 * 1024 * 1024 + 17);
    let local = cli.write("video.bin", &big);
    assert_eq!(
        cli.ok(&["put", &local, "clips/video.bin"]).trim(),
        "clips/video.bin"
    );
    assert_eq!(cli.run(&["get", "clips/video.bin"]).stdout, big);
    let second = cli.ok(&["put", &local, "clips/video.bin"]);
    assert!(second.trim().starts_with("clips/video_"), "{second}");
    let newer = cli.write("newer.txt", b"second version");
    cli.ok(&["put", &newer, "clips/video.bin", "--overwrite"]);
    assert_eq!(
        cli.run(&["get", "clips/video.bin", "-"]).stdout,
        b"second version"
    );
    let piped = cli.run_with_stdin(
        &["put", "-", "piped/data.json", "--public"],
        Some(b"{\"from\": \"stdin\"}"),
    );
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let stat: serde_json::Value =
        serde_json::from_str(&cli.ok(&["stat", "piped/data.json", "--json"])).expect("json");
    assert_eq!(stat["size"], 17);
    assert_eq!(stat["public"], true);
    assert_eq!(stat["content_type"], "application/json");
    assert_eq!(cli.ok(&["ls"]), "clips/\npiped/\n");
    assert_eq!(cli.ok(&["ls", "clips"]).lines().count(), 2);
    let private = cli.run_with_stdin(&["put", "-", "secret.txt", "--private"], Some(b"s"));
    if private_files {
        assert!(private.status.success());
        let url = cli.ok(&["url", "secret.txt", "--expires", "60"]);
        assert!(url.contains('?') && url.contains("secret.txt"), "{url}");
        cli.ok(&["rm", "secret.txt"]);
    } else {
        assert!(!private.status.success());
        assert!(String::from_utf8_lossy(&private.stderr).contains("private files"));
        assert!(cli.fails(&["get", "secret.txt"]).contains("not found"));
    }
    // load and dump: a media directory in, and back out.
    let media = cli.dir.path().join("media");
    std::fs::create_dir_all(media.join("docs")).expect("mkdir");
    std::fs::write(media.join("docs/a.txt"), b"alpha").expect("write");
    std::fs::write(media.join("b.txt"), b"beta").expect("write");
    let media_arg = media.display().to_string();
    assert_eq!(
        cli.ok(&["load", &media_arg]).trim(),
        "load: 2 copied (9 bytes), 0 unchanged, 0 failed"
    );
    let out = cli.dir.path().join("out");
    let out_arg = out.display().to_string();
    assert!(cli.ok(&["dump", &out_arg]).starts_with("dump: 5 copied"));
    assert_eq!(
        std::fs::read(out.join("docs/a.txt")).expect("dumped"),
        b"alpha"
    );
    // cleanup: the rows live in the app's database, named with --database.
    let app_db = cli.dir.path().join("app.db");
    let app_url = format!("sqlite://{}", app_db.display());
    {
        use diesel::{Connection, RunQueryDsl};
        let mut conn =
            diesel::SqliteConnection::establish(&app_db.display().to_string()).expect("app db");
        diesel::sql_query("CREATE TABLE app_doc (id INTEGER PRIMARY KEY, file VARCHAR(100))")
            .execute(&mut conn)
            .expect("create");
        diesel::sql_query("INSERT INTO app_doc (id, file) VALUES (1, 'docs/a.txt')")
            .execute(&mut conn)
            .expect("insert");
    }
    let dry = cli.ok(&[
        "cleanup",
        "--database",
        &app_url,
        "--reference",
        "app_doc.file",
        "--older-than",
        "0",
        "--dry-run",
    ]);
    assert!(
        dry.contains("would delete: b.txt") && !dry.contains("docs/a.txt"),
        "{dry}"
    );
    assert!(cli
        .fails(&["cleanup", "--reference", "app_doc.file"])
        .contains("referencing rows outside a database"));
    assert!(cli.ok(&["sweep"]).starts_with("swept "));
    for name in ["clips/video.bin", "piped/data.json", "docs/a.txt", "b.txt"] {
        cli.ok(&["rm", name]);
    }
    cli.ok(&["rm", second.trim()]);
    assert!(cli.fails(&["rm", "b.txt"]).contains("not found"));
    assert_eq!(cli.ok(&["ls"]), "");
}

/// The value of a remote test variable (see `scripts/remote-servers`).
#[cfg(feature = "remote")]
fn remote_env(var: &str) -> Option<String> {
    storage_conformance::required_env(var, "scripts/test starts scripts/remote-servers")
}

#[cfg(feature = "remote")]
fn run_id() -> String {
    format!("cli-{}", rand::random::<u64>())
}

#[cfg(feature = "remote")]
#[test]
fn remote_s3_takes_every_command() {
    let (Some(endpoint), Some(bucket)) = (
        remote_env("DBFILES_TEST_S3_ENDPOINT"),
        remote_env("DBFILES_TEST_S3_BUCKET"),
    ) else {
        return;
    };
    remote_round_trip(
        format!(
            "s3://{bucket}/{}?endpoint={endpoint}&region=us-east-1",
            run_id()
        ),
        true,
    );
}

#[cfg(feature = "remote")]
#[test]
fn remote_sftp_takes_every_command() {
    let (Some(endpoint), Some(key), Some(root)) = (
        remote_env("DBFILES_TEST_SFTP_ENDPOINT"),
        remote_env("DBFILES_TEST_SFTP_KEY"),
        remote_env("DBFILES_TEST_SFTP_ROOT"),
    ) else {
        return;
    };
    let authority = endpoint.trim_start_matches("ssh://");
    remote_round_trip(
        format!("sftp://{authority}{root}/{}?key={key}", run_id()),
        false,
    );
}

#[cfg(feature = "remote")]
#[test]
fn remote_ftp_webdav_and_azblob_take_every_command() {
    if let (Some(endpoint), Some(user), Some(password)) = (
        remote_env("DBFILES_TEST_FTP_ENDPOINT"),
        remote_env("DBFILES_TEST_FTP_USER"),
        remote_env("DBFILES_TEST_FTP_PASSWORD"),
    ) {
        let host = endpoint.trim_start_matches("ftp://");
        remote_round_trip(
            format!("ftp://{user}:{password}@{host}/{}", run_id()),
            false,
        );
    }
    if let Some(endpoint) = remote_env("DBFILES_TEST_WEBDAV_ENDPOINT") {
        let host = endpoint.trim_start_matches("http://");
        remote_round_trip(format!("webdav://{host}/{}", run_id()), false);
    }
    if let (Some(endpoint), Some(container), Some(account)) = (
        remote_env("DBFILES_TEST_AZBLOB_ENDPOINT"),
        remote_env("DBFILES_TEST_AZBLOB_CONTAINER"),
        remote_env("DBFILES_TEST_AZBLOB_ACCOUNT_NAME"),
    ) {
        // Private files are kept, but without a SAS token Azure URLs cannot be presigned.
        let cli = Cli::with_storage(format!(
            "azblob://{container}/{}?endpoint={endpoint}&account_name={account}",
            run_id()
        ));
        let local = cli.write("a.txt", b"azure");
        assert_eq!(
            cli.ok(&["put", &local, "a.txt", "--private"]).trim(),
            "a.txt"
        );
        assert_eq!(cli.run(&["get", "a.txt"]).stdout, b"azure");
        assert!(cli.fails(&["url", "a.txt"]).contains("presigned"));
        cli.ok(&["rm", "a.txt"]);
    }
}

/// A storage URL whose service was not built in says which feature it needs.
#[cfg(not(feature = "remote"))]
#[test]
fn remote_urls_name_their_feature() {
    let cli = Cli::with_storage("s3://bucket/prefix".to_owned());
    assert!(cli.fails(&["ls"]).contains("'s3' cargo feature"));
}
