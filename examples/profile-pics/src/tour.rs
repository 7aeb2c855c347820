//! The walk each example's tests take through its running binary (feature `tour`): start the
//! real program on a loopback port, upload pictures over HTTP as a browser's form would, and
//! check what the page, `/media/` and the storage say. One walk, three frameworks.

// Test tooling: a skipped leg or a leftover schema is said on stderr.
#![allow(clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A test failure, said in words.
pub type Failure = String;

fn fail<T>(what: impl Into<String>) -> Result<T, Failure> {
    Err(what.into())
}

/// An example binary running on a loopback port; killed and reaped when dropped.
#[derive(Debug)]
pub struct RunningApp {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl RunningApp {
    /// Starts `bin` with `STORAGE_URL` (default: a new SQLite file in a temporary directory)
    /// on a free loopback port, and waits (bounded) for it to say where it listens.
    pub fn start(bin: &str, storage_url: Option<&str>) -> Result<Self, Failure> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let storage_url = storage_url.map_or_else(
            || format!("sqlite://{}", dir.path().join("pics.db").display()),
            str::to_owned,
        );
        // A free port, chosen here (rocket 0.5 cannot report a port it picked itself).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut child = Command::new(bin)
            .env("ADDR", format!("127.0.0.1:{port}"))
            .env("STORAGE_URL", &storage_url)
            .env("SECRET", "tour-secret")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {bin}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // The line that says where it listens (rocket logs its own lines first); the rest of
        // the output is read and dropped so the app never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut said = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if said.is_none() && line.contains("profile pictures on http://") {
                    said = Some(line.clone());
                    let _ = tx.send(line);
                }
            }
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let exited = child.try_wait().ok().flatten();
            let _ = child.kill();
            let _ = child.wait();
            return fail(match exited {
                Some(status) => format!("{bin} exited ({status}) before it listened"),
                None => format!("{bin} did not say where it listens within 60 s"),
            });
        };
        let Some(base) = line
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
        else {
            let _ = child.kill();
            let _ = child.wait();
            return fail(format!("{bin} said {line:?}, not where it listens"));
        };
        let app = Self {
            base: base.to_owned(),
            child,
            _dir: dir,
        };
        // Rocket says where it will listen just before it binds: wait for the port (bounded).
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(app);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        fail(format!("{bin} never listened on port {port}"))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(feature = "postgres")]
/// A PostgreSQL storage URL in a schema of its own, from `DBFILES_TEST_POSTGRES_URL`; `None`
/// (said on stderr) when it is not set outside CI. The schema is dropped with the guard.
pub fn postgres_storage() -> Option<PostgresSchema> {
    let admin = storage_conformance::required_env(
        "DBFILES_TEST_POSTGRES_URL",
        "the profile-pictures tour on PostgreSQL did not run (scripts/test sets it)",
    )?;
    let schema = format!("profile_pics_{}", rand::random::<u32>());
    let created = psql(&admin, &format!("CREATE SCHEMA {schema}"));
    assert!(created.is_ok(), "{created:?}");
    let separator = if admin.contains('?') { '&' } else { '?' };
    Some(PostgresSchema {
        url: format!("{admin}{separator}options=-c%20search_path%3D{schema}"),
        admin,
        schema,
    })
}

#[cfg(feature = "postgres")]
/// A schema made by [`postgres_storage`]; dropped on drop.
#[derive(Debug)]
pub struct PostgresSchema {
    /// The storage URL that works in the schema.
    pub url: String,
    admin: String,
    schema: String,
}

#[cfg(feature = "postgres")]
impl Drop for PostgresSchema {
    fn drop(&mut self) {
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        if let Err(e) = psql(&self.admin, &statement) {
            eprintln!("{e}"); // a leftover schema is named, not a second panic
        }
    }
}

#[cfg(feature = "postgres")]
/// Runs one statement with `psql`, giving up on connecting after 10 s.
fn psql(url: &str, statement: &str) -> Result<(), Failure> {
    let status = Command::new("psql")
        .args([url, "-qc", statement])
        .env("PGCONNECT_TIMEOUT", "10")
        .status();
    if status.as_ref().is_ok_and(std::process::ExitStatus::success) {
        Ok(())
    } else {
        fail(format!("psql {statement}: {status:?}"))
    }
}

/// `data` with zero bytes after it up to `size`: a valid image header on a too large file.
fn padded(mut data: Vec<u8>, size: usize) -> Vec<u8> {
    data.resize(size, 0);
    data
}

const BOUNDARY: &str = "tour-boundary-7f3a";

/// A browser's form post of one file in the `picture` field.
fn form_with_picture(filename: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"picture\"; \
         filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// What came back.
struct Answer {
    status: u16,
    location: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, Failure> {
        let response = request
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.bytes().await.map_err(|e| e.to_string())?.to_vec();
        Ok(Answer {
            status,
            location,
            body,
        })
    }

    async fn get(&self, path: &str) -> Result<Answer, Failure> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn upload(&self, route: &str, body: Vec<u8>) -> Result<Answer, Failure> {
        let request = self
            .http
            .post(format!("{}{route}", self.base))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body);
        self.send(request).await
    }

    async fn delete(&self, name: &str) -> Result<Answer, Failure> {
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("name", name)
            .finish();
        let request = self
            .http
            .post(format!("{}/delete", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        self.send(request).await
    }

    /// The page after a redirect, and the `<li>` of each picture on it (name, whole item).
    async fn page(&self, location: &str) -> Result<(String, Vec<(String, String)>), Failure> {
        let page = self.get(location).await?;
        if page.status != 200 {
            return fail(format!("GET {location}: {}", page.status));
        }
        let text = page.text();
        let items = text
            .split("<li data-name=\"")
            .skip(1)
            .filter_map(|rest| {
                let (name, _) = rest.split_once('"')?;
                let (item, _) = rest.split_once("</li>")?;
                Some((name.to_owned(), item.to_owned()))
            })
            .collect();
        Ok((text, items))
    }
}

fn img_src(item: &str) -> Option<String> {
    let src = item.split("<img src=\"").nth(1)?.split('"').next()?;
    Some(src.replace("&amp;", "&"))
}

/// The whole walk against the app at `base`.
pub async fn tour(base: &str) -> Result<(), Failure> {
    let client = Client {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?,
        base: base.to_owned(),
    };
    let (first, items) = client.page("/").await?;
    if !items.is_empty() || !first.contains("No pictures yet.") {
        return fail(format!("a new storage lists pictures: {first}"));
    }

    // A picture: a uuid name under profile_pics/, its size named, listed as a thumbnail.
    let portrait = storage_conformance::png_header(640, 480);
    let saved = client
        .upload(
            "/pictures",
            form_with_picture("Me At The Beach.PNG", "image/png", &portrait),
        )
        .await?;
    if saved.status != 303 {
        return fail(format!("upload: {} {}", saved.status, saved.text()));
    }
    let (page, items) = client.page(&saved.location).await?;
    let [(name, item)] = items.as_slice() else {
        return fail(format!("one picture expected: {page}"));
    };
    let uuid = name
        .strip_prefix("profile_pics/")
        .and_then(|rest| rest.strip_suffix(".png"))
        .unwrap_or_default();
    if uuid.len() != 32 || !uuid.chars().all(|c| c.is_ascii_hexdigit()) {
        return fail(format!("not a uuid name under profile_pics/: {name}"));
    }
    if !page.contains(&format!("Saved {name} (640x480).")) || !item.contains("640x480") {
        return fail(format!(
            "the page does not name the picture and its size: {page}"
        ));
    }
    let src = img_src(item).ok_or_else(|| format!("no <img> in {item}"))?;
    if src != format!("/media/{name}") {
        return fail(format!("a public picture's thumbnail is {src}"));
    }
    let served = client.get(&src).await?;
    if served.status != 200 || served.body != portrait {
        return fail(format!(
            "GET {src}: {} ({} bytes)",
            served.status,
            served.body.len()
        ));
    }

    // Refused, nothing stored: not an image, too many pixels, too many bytes.
    let refusals = [
        (
            form_with_picture("notes.png", "image/png", b"just some text"),
            415,
            "'notes.png' is not an image",
        ),
        (
            form_with_picture(
                "wide.png",
                "image/png",
                &storage_conformance::png_header(5000, 2),
            ),
            415,
            "larger than the 4096x4096 allowed",
        ),
        (
            form_with_picture(
                "huge.png",
                "image/png",
                &padded(storage_conformance::png_header(64, 64), 6 << 20),
            ),
            413,
            "larger than the 5.0 MiB limit",
        ),
    ];
    for (body, status, words) in refusals {
        let refused = client.upload("/pictures", body).await?;
        if refused.status != status || !refused.text().contains(words) {
            return fail(format!(
                "expected {status} saying {words:?}: {} {}",
                refused.status,
                refused.text()
            ));
        }
    }

    // A private picture: its thumbnail is a signed URL; the bare URL is refused.
    let secret_face = storage_conformance::png_header(32, 32);
    let saved = client
        .upload(
            "/private-pictures",
            form_with_picture("me.png", "image/png", &secret_face),
        )
        .await?;
    if saved.status != 303 {
        return fail(format!("private upload: {} {}", saved.status, saved.text()));
    }
    let (page, items) = client.page(&saved.location).await?;
    if items.len() != 2 {
        return fail(format!(
            "the refused uploads stored something, or the private one is missing: {page}"
        ));
    }
    let Some((private_name, private_item)) = items.iter().find(|(n, _)| n != name) else {
        return fail(format!("no private picture on {page}"));
    };
    let signed = img_src(private_item).ok_or_else(|| format!("no <img> in {private_item}"))?;
    if !signed.starts_with(&format!("/media/{private_name}?")) || !signed.contains("signature=") {
        return fail(format!("a private picture's thumbnail is {signed}"));
    }
    let served = client.get(&signed).await?;
    if served.status != 200 || served.body != secret_face {
        return fail(format!("GET {signed}: {}", served.status));
    }
    let bare = client.get(&format!("/media/{private_name}")).await?;
    if bare.status != 403 {
        return fail(format!(
            "a private picture without signature: {}",
            bare.status
        ));
    }
    // A later expiry under the same signature: refused (the signature covers the expiry).
    let tampered = client.get(&signed.replace("expires=", "expires=9")).await?;
    if tampered.status != 403 {
        return fail(format!("a tampered signed URL: {}", tampered.status));
    }

    // Delete: gone from storage and page; names outside profile_pics/ are refused.
    let deleted = client.delete(name).await?;
    if deleted.status != 303 {
        return fail(format!("delete: {} {}", deleted.status, deleted.text()));
    }
    let (page, items) = client.page(&deleted.location).await?;
    if items.len() != 1 || !page.contains(&format!("Deleted {name}.")) {
        return fail(format!("after the delete: {page}"));
    }
    if client.get(&src).await?.status != 404 {
        return fail("a deleted picture is still served");
    }
    for outside in ["../etc/passwd", "other/file.png", "profile_pics/../x.png"] {
        let refused = client.delete(outside).await?;
        if refused.status != 400 {
            return fail(format!("delete {outside}: {}", refused.status));
        }
    }
    Ok(())
}

/// The walk through the binary `bin` on SQLite, then on PostgreSQL (in a schema of its own)
/// when `DBFILES_TEST_POSTGRES_URL` is set: what each example's test calls.
pub async fn tour_binary(bin: &str) -> Result<(), Failure> {
    let app = RunningApp::start(bin, None)?;
    tour(app.base())
        .await
        .map_err(|e| format!("on SQLite: {e}"))?;
    drop(app);
    #[cfg(feature = "postgres")]
    if let Some(schema) = postgres_storage() {
        let app = RunningApp::start(bin, Some(&schema.url))?;
        tour(app.base())
            .await
            .map_err(|e| format!("on PostgreSQL: {e}"))?;
    }
    #[cfg(not(feature = "postgres"))]
    {
        if std::env::var("CI").as_deref() == Ok("true") {
            return fail(
                "built without the `postgres` feature: the PostgreSQL tour must run in CI",
            );
        }
        eprintln!("SKIPPED: the PostgreSQL tour (build with --features postgres)");
    }
    Ok(())
}
