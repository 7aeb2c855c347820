//! Faults, load and concurrency against real `dbfiles serve` processes over loopback HTTP: a
//! server killed in the middle of a 200 MiB upload, two servers on one PostgreSQL or MariaDB
//! racing for one name, SQLite under 64 readers and 8 writers, and a PostgreSQL outage under
//! load. Each test counts what survives.

// Test code: failing loudly is the point.
#![allow(
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

mod common;
use common::{http, Serve};

const SECRET: &str = "faults-secret";

/// One fault test at a time: each loads the machine on purpose, and the outage test times
/// its answers.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records a failure and ends the load: one is enough to fail, and a dead server must not
/// fill memory with millions of them.
fn stop_with(stop: &AtomicBool, failures: &Mutex<Vec<String>>, failure: String) {
    stop.store(true, Ordering::Relaxed);
    failures.lock().unwrap().push(failure);
}

/// Sets `stop` when dropped, so the load's workers end even when the test panics in the
/// middle of a scope (a scope waits for every thread).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How long the load tests run: `DBFILES_FAULTS_SECONDS` (default 10; `scripts/faults` runs
/// longer).
fn load_seconds() -> u64 {
    std::env::var("DBFILES_FAULTS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}
const MIB: usize = 1 << 20;

/// `dbfiles serve` on `storage` signing with [`SECRET`], taking uploads up to `max_upload`.
fn serve(storage: &str, dir: &Path, max_upload: usize) -> Serve {
    let max = max_upload.to_string();
    Serve::start(
        storage,
        dir,
        &["--max-upload", &max],
        &[("DBFILES_SECRET", SECRET)],
    )
}

/// Runs `dbfiles` on `storage`.
fn dbfiles(storage: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dbfiles"))
        .args(args)
        .env("DBFILES_STORAGE", storage)
        .env("DBFILES_SECRET", SECRET)
        .output()
        .expect("run dbfiles")
}

fn dbfiles_ok(storage: &str, args: &[&str]) -> String {
    let out = dbfiles(storage, args);
    assert!(
        out.status.success(),
        "dbfiles {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

const BOUNDARY: &str = "faults-boundary-0d9c";

fn multipart_head(filename: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
}

fn multipart_tail() -> String {
    format!("\r\n--{BOUNDARY}--\r\n")
}

/// Uploads `data` as `filename`; (status, stored name or answer text).
fn upload(addr: &str, filename: &str, data: &[u8]) -> Result<(u16, String), String> {
    let mut body = multipart_head(filename).into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(multipart_tail().as_bytes());
    let extra = format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n");
    let (status, answer) = http(addr, "POST", "/upload", &extra, &body)?;
    Ok((status, String::from_utf8_lossy(&answer).trim().to_owned()))
}

/// GET a stored (private) file with a signed URL.
fn download(addr: &str, name: &str) -> Result<(u16, Vec<u8>), String> {
    let signer = storage_core::UrlSigner::new(SECRET);
    let name = storage_core::Name::new(name).map_err(|e| e.to_string())?;
    let query = signer.sign(&name, Duration::from_secs(600));
    let path = storage_core::media_url("/media", name.as_str());
    http(addr, "GET", &format!("{path}?{query}"), "", b"")
}

/// Different bytes for every `seed`.
fn content(seed: u64, size: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Counts rows with one SQL statement on the storage's database.
fn count(storage: &str, sql: &str) -> i64 {
    let out = if let Some(path) = storage.strip_prefix("sqlite://") {
        use diesel::{Connection, RunQueryDsl};
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = diesel::sqlite::SqliteConnection::establish(path).expect("open sqlite");
        let rows: Vec<Count> = diesel::sql_query(sql.replace("count(*)", "count(*) AS n"))
            .load(&mut conn)
            .expect(sql);
        return rows[0].n;
    } else if storage.starts_with("postgres") {
        Command::new("psql").args([storage, "-tAc", sql]).output()
    } else {
        let url = url::Url::parse(storage).expect("mysql url");
        Command::new("mariadb")
            .args(["-h", url.host_str().unwrap_or("127.0.0.1"), "-P"])
            .arg(url.port().unwrap_or(3306).to_string())
            .args([
                "-u",
                url.username(),
                "-D",
                url.path().trim_start_matches('/'),
                "-N",
                "-e",
                sql,
            ])
            .output()
    }
    .expect("sql client");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{sql}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// The URL from `var`, or a clear skip (a failure under CI).
fn server_url(var: &str) -> Option<String> {
    storage_conformance::required_env(var, "scripts/test sets it")
}

/// A PostgreSQL storage in a schema of its own (dropped on drop).
struct PgSchema {
    admin: String,
    schema: String,
    url: String,
}

impl PgSchema {
    fn new(admin: &str) -> Self {
        let schema = format!("dbfiles_faults_{}", rand::random::<u32>());
        let status = Command::new("psql")
            .args([admin, "-qc", &format!("CREATE SCHEMA {schema}")])
            .status()
            .expect("psql");
        assert!(status.success());
        let separator = if admin.contains('?') { '&' } else { '?' };
        Self {
            url: format!("{admin}{separator}options=-c%20search_path%3D{schema}"),
            admin: admin.to_owned(),
            schema,
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin,
                "-qc",
                &format!("DROP SCHEMA {} CASCADE", self.schema),
            ])
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGOPTIONS", "--client-min-messages=warning")
            .status();
    }
}

/// A MariaDB storage in a database of its own (dropped on drop).
struct MariaDatabase {
    url: String,
    database: String,
    host: String,
    port: String,
    user: String,
}

impl MariaDatabase {
    fn new(admin: &str) -> Self {
        let parsed = url::Url::parse(admin).expect("mysql url");
        let database = format!("dbfiles_faults_{}", rand::random::<u32>());
        let mut url = parsed.clone();
        url.set_path(&format!("/{database}"));
        let db = Self {
            url: url.to_string(),
            host: parsed.host_str().unwrap_or("127.0.0.1").to_owned(),
            port: parsed.port().unwrap_or(3306).to_string(),
            user: parsed.username().to_owned(),
            database,
        };
        db.sql(&format!("CREATE DATABASE {}", db.database));
        db
    }

    fn sql(&self, statement: &str) {
        let status = Command::new("mariadb")
            .args([
                "-h", &self.host, "-P", &self.port, "-u", &self.user, "-e", statement,
            ])
            .status()
            .expect("mariadb");
        assert!(status.success(), "{statement}");
    }
}

impl Drop for MariaDatabase {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args(["-h", &self.host, "-P", &self.port, "-u", &self.user, "-e"])
            .arg(format!("DROP DATABASE {}", self.database))
            .status();
    }
}

// ---------------------------------------------------------------------------------------------
// A server killed half-way through a 200 MiB upload.

/// Kills the server with SIGKILL when about half of a 200 MiB upload has gone in; then: no
/// visible file, the sweep gives the chunks back, a restarted server serves the rest intact.
fn crash_during_upload(storage: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Files that must survive.
    let mut kept = Vec::new();
    let first = serve(storage, dir.path(), 300 * MIB);
    for i in 0..3u64 {
        let data = content(i, 300_000 + i as usize);
        let (status, name) = upload(&first.addr, &format!("kept{i}.bin"), &data).expect("upload");
        assert_eq!(status, 200, "{name}");
        kept.push((name, sha(&data)));
    }
    drop(first);
    let chunks_before = count(storage, "SELECT count(*) FROM storage_chunks");

    let server = serve(storage, dir.path(), 300 * MIB);
    let total = 200 * MIB;
    let head = multipart_head("crash.bin");
    let tail = multipart_tail();
    let mut stream = TcpStream::connect(&server.addr).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {}\r\n\r\n{head}",
        server.addr,
        head.len() + total + tail.len()
    )
    .expect("headers");
    let block = content(99, MIB);
    for _ in 0..total / 2 / MIB {
        stream.write_all(&block).expect("body");
    }
    // Half sent: wait (bounded) until the server has written chunks of it, then kill it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(storage, "SELECT count(*) FROM storage_chunks") < chunks_before + 50 {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the database"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let chunks_mid = count(storage, "SELECT count(*) FROM storage_chunks");
    server.kill();
    drop(stream);

    let names: Vec<String> = dbfiles_ok(storage, &["ls"])
        .lines()
        .map(str::to_owned)
        .collect();
    let mut expected: Vec<String> = kept.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    assert_eq!(names, expected, "the half upload is not visible");

    // The sweep reclaims the abandoned upload's chunks, and only those.
    assert!(chunks_mid > chunks_before, "{chunks_mid} chunks mid-upload");
    dbfiles_ok(storage, &["sweep", "--pending-older-than", "0"]);
    assert_eq!(
        count(storage, "SELECT count(*) FROM storage_chunks"),
        chunks_before,
        "the sweep gave back every chunk of the killed upload"
    );

    // A restarted server serves everything else intact.
    let restarted = serve(storage, dir.path(), 300 * MIB);
    for (name, digest) in &kept {
        let (status, body) = download(&restarted.addr, name).expect("download");
        assert_eq!(status, 200, "{name}");
        assert_eq!(sha(&body), *digest, "{name} intact");
    }
}

#[test]
fn crash_during_upload_on_sqlite() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = format!("sqlite://{}/media.db", dir.path().display());
    dbfiles_ok(&storage, &["migrate"]);
    crash_during_upload(&storage);
}

#[test]
fn crash_during_upload_on_postgres() {
    let _serial = one_at_a_time();
    let Some(admin) = server_url("DBFILES_TEST_POSTGRES_URL") else {
        return;
    };
    let schema = PgSchema::new(&admin);
    dbfiles_ok(&schema.url, &["migrate"]);
    crash_during_upload(&schema.url);
}

// ---------------------------------------------------------------------------------------------
// Two servers on one database.

/// Uploads through one server are served by the other; 100 concurrent uploads of one name
/// spread over both get 100 distinct names, each with its own bytes.
fn two_servers(storage: &str) {
    dbfiles_ok(storage, &["migrate"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = [
        serve(storage, dir.path(), 10 * MIB),
        serve(storage, dir.path(), 10 * MIB),
    ];
    let data = content(7, 50_000);
    let (status, name) = upload(&servers[0].addr, "hello.bin", &data).expect("upload");
    assert_eq!(status, 200, "{name}");
    let (status, body) = download(&servers[1].addr, &name).expect("download");
    assert_eq!(
        (status, sha(&body)),
        (200, sha(&data)),
        "served by the other server"
    );

    let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    let results: Vec<(String, [u8; 32], usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..100u64)
            .map(|i| {
                let addr = addrs[i as usize % 2].clone();
                scope.spawn(move || {
                    let data = content(1000 + i, 20_000 + i as usize);
                    let (status, name) = upload(&addr, "same.bin", &data).expect("upload");
                    assert_eq!(status, 200, "upload {i}: {name}");
                    (name, sha(&data), i as usize % 2)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut names: Vec<&str> = results.iter().map(|(n, _, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 100, "100 uploads of one name, 100 names");
    for (name, digest, via) in &results {
        let (status, body) = download(&addrs[1 - via], name).expect("download");
        assert_eq!(
            (status, sha(&body)),
            (200, *digest),
            "{name} read through the other server"
        );
    }
}

#[test]
fn two_servers_on_one_postgres() {
    let _serial = one_at_a_time();
    let Some(admin) = server_url("DBFILES_TEST_POSTGRES_URL") else {
        return;
    };
    let schema = PgSchema::new(&admin);
    two_servers(&schema.url);
}

#[test]
fn two_servers_on_one_mariadb() {
    let _serial = one_at_a_time();
    let Some(admin) = server_url("DBFILES_TEST_MYSQL_URL") else {
        return;
    };
    let database = MariaDatabase::new(&admin);
    two_servers(&database.url);
}

// ---------------------------------------------------------------------------------------------
// SQLite under concurrency.

/// 64 readers and 8 writers against one server on SQLite for 10 seconds (see
/// [`load_seconds`]): every request
/// answered 200, none with "database is locked", every byte right.
#[test]
fn sqlite_with_64_readers_and_8_writers() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = format!("sqlite://{}/media.db", dir.path().display());
    let server = serve(&storage, dir.path(), 10 * MIB);
    let mut files = Vec::new();
    for i in 0..8u64 {
        let data = content(i, 100_000);
        let (status, name) = upload(&server.addr, &format!("r{i}.bin"), &data).expect("upload");
        assert_eq!(status, 200, "{name}");
        files.push((name, sha(&data)));
    }
    let stop = AtomicBool::new(false);
    let failures = Mutex::new(Vec::<String>::new());
    let written = Mutex::new(Vec::<(String, [u8; 32])>::new());
    let (reads, writes) = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..64usize)
            .map(|r| {
                let (files, stop, failures, addr) = (&files, &stop, &failures, &server.addr);
                scope.spawn(move || {
                    let mut done = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let (name, digest) = &files[(r + done as usize) % files.len()];
                        match download(addr, name) {
                            Ok((200, body)) if sha(&body) == *digest => done += 1,
                            Ok((status, body)) => stop_with(
                                stop,
                                failures,
                                format!(
                                    "read {name}: {status} {}",
                                    String::from_utf8_lossy(&body[..body.len().min(200)])
                                ),
                            ),
                            Err(e) => stop_with(stop, failures, format!("read {name}: {e}")),
                        }
                    }
                    done
                })
            })
            .collect();
        let writers: Vec<_> = (0..8u64)
            .map(|w| {
                let (stop, failures, written, addr) = (&stop, &failures, &written, &server.addr);
                scope.spawn(move || {
                    let mut done = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let data = content(10_000 * (w + 1) + done, 30_000);
                        match upload(addr, &format!("w{w}.bin"), &data) {
                            Ok((200, name)) => {
                                written.lock().unwrap().push((name, sha(&data)));
                                done += 1;
                            }
                            Ok((status, answer)) => {
                                stop_with(stop, failures, format!("write: {status} {answer}"));
                            }
                            Err(e) => stop_with(stop, failures, format!("write: {e}")),
                        }
                    }
                    done
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(load_seconds()));
        stop.store(true, Ordering::Relaxed);
        let reads: u64 = readers.into_iter().map(|h| h.join().expect("reader")).sum();
        let writes: u64 = writers.into_iter().map(|h| h.join().expect("writer")).sum();
        (reads, writes)
    });
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "sqlite: {reads} reads and {writes} writes in {} s, {} failures",
        load_seconds(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(reads > 0 && writes > 0, "{reads} reads, {writes} writes");
    for (name, digest) in written.into_inner().unwrap().iter().step_by(7) {
        let (status, body) = download(&server.addr, name).expect("download");
        assert_eq!((status, sha(&body)), (200, *digest), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// A PostgreSQL outage under load.

/// A PostgreSQL server of this test's own (initdb in a temporary directory, run as the
/// `postgres` user), so stopping it disturbs nothing else on the machine.
struct OwnPostgres {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl OwnPostgres {
    fn create() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())?;
        let dir = std::env::temp_dir().join(format!("dbfiles-pg-{}", rand::random::<u32>()));
        std::fs::create_dir(&dir).ok()?;
        let owned = Command::new("chown")
            .arg("postgres:")
            .arg(&dir)
            .status()
            .ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let pg = Self { dir, port, bin };
        let init = pg.as_postgres(&["initdb", "-A", "trust", "-U", "postgres", "-D"]);
        if !owned.success() || !init {
            return None;
        }
        Some(pg)
    }

    fn as_postgres(&self, args: &[&str]) -> bool {
        let (tool, rest) = args.split_first().expect("a tool");
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(rest)
            .arg(self.dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        assert!(
            self.as_postgres(&["pg_ctl", "-w", "-t", "60", "-o", &options, "start", "-D"]),
            "own PostgreSQL did not start"
        );
    }

    fn stop(&self) {
        assert!(
            self.as_postgres(&["pg_ctl", "-w", "-t", "60", "-m", "fast", "stop", "-D"]),
            "own PostgreSQL did not stop"
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self.as_postgres(&["pg_ctl", "-w", "-t", "60", "-m", "immediate", "stop", "-D"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one request of the load saw.
struct Seen {
    at: Instant,
    took: Duration,
    status: Result<u16, String>,
}

/// PostgreSQL stopped for 6 s and started again under a mixed read/write load: requests in
/// the outage fail with 503 within the pool's 10 s timeout (no hang, no panic, the server
/// lives), service comes back on its own within seconds, and every file stored before or
/// after reads back with its checksum.
#[test]
fn postgres_outage_under_load() {
    let _serial = one_at_a_time();
    if server_url("DBFILES_TEST_POSTGRES_URL").is_none() {
        return; // the same machine set-up the other PostgreSQL tests need
    }
    let Some(pg) = OwnPostgres::create() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot make a PostgreSQL server of the test's own (initdb as postgres)"
        );
        eprintln!("SKIPPED: the outage test needs initdb and the postgres user");
        return;
    };
    pg.start();
    let storage = pg.url();
    dbfiles_ok(&storage, &["migrate"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = serve(&storage, dir.path(), 10 * MIB);
    let mut before = Vec::new();
    for i in 0..5u64 {
        let data = content(500 + i, 80_000);
        let (status, name) =
            upload(&server.addr, &format!("before{i}.bin"), &data).expect("upload");
        assert_eq!(status, 200, "{name}");
        before.push((name, sha(&data)));
    }

    let stop = AtomicBool::new(false);
    let seen = Mutex::new(Vec::<Seen>::new());
    let saved = Mutex::new(Vec::<(String, [u8; 32])>::new());
    let (down_at, up_at) = std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        for worker in 0..6u64 {
            let (stop, seen, saved, before, addr) = (&stop, &seen, &saved, &before, &server.addr);
            scope.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let status = if worker % 2 == 0 {
                        let data = content(10_000 * (worker + 1) + n, 40_000);
                        upload(addr, &format!("during{worker}.bin"), &data).map(|(status, name)| {
                            if status == 200 {
                                saved.lock().unwrap().push((name, sha(&data)));
                            }
                            status
                        })
                    } else {
                        let (name, digest) = &before[n as usize % before.len()];
                        download(addr, name).map(|(status, body)| {
                            assert!(
                                status != 200 || sha(&body) == *digest,
                                "a read returned wrong bytes"
                            );
                            status
                        })
                    };
                    seen.lock().unwrap().push(Seen {
                        at: started,
                        took: started.elapsed(),
                        status,
                    });
                    n += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
        std::thread::sleep(Duration::from_secs(3));
        let down_at = Instant::now();
        pg.stop();
        std::thread::sleep(Duration::from_secs(6));
        pg.start();
        let up_at = Instant::now();
        std::thread::sleep(Duration::from_secs(5 + load_seconds()));
        stop.store(true, Ordering::Relaxed);
        (down_at, up_at)
    });
    assert!(server.is_running(), "the server died in the outage");
    let seen = seen.into_inner().unwrap();
    let outage: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.at > down_at && s.at < up_at)
        .collect();
    let statuses: Vec<&Result<u16, String>> = seen.iter().map(|s| &s.status).collect();
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200 | 503))),
        "only 200 or 503, no broken connection: {:?}",
        statuses
            .iter()
            .filter(|s| !matches!(s, Ok(200 | 503)))
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(
        outage.iter().any(|s| s.status == Ok(503)),
        "requests during the outage got 503"
    );
    let slowest = seen.iter().map(|s| s.took).max().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(25),
        "no request hung: slowest {slowest:?}"
    );
    let back = seen
        .iter()
        .filter(|s| s.at > up_at && s.status == Ok(200))
        .map(|s| s.at.duration_since(up_at))
        .min()
        .expect("service came back after the restart");
    let late: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.at > up_at + Duration::from_secs(10))
        .collect();
    assert!(
        !late.is_empty(),
        "requests 10 s after the restart were made"
    );
    let failing_late = late.iter().filter(|s| s.status != Ok(200)).count();
    eprintln!(
        "outage: {} requests, {} in the outage, slowest {slowest:?}, first success {back:?} after the restart",
        seen.len(),
        outage.len()
    );
    assert!(
        back < Duration::from_secs(10),
        "back within seconds: {back:?}"
    );
    assert_eq!(
        failing_late, 0,
        "every request 10 s after the restart succeeds"
    );
    for (name, digest) in before.iter().chain(saved.into_inner().unwrap().iter()) {
        let (status, body) = download(&server.addr, name).expect("download");
        assert_eq!(
            (status, sha(&body)),
            (200, *digest),
            "{name} after the outage"
        );
    }
}
