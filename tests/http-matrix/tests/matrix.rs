//! One request matrix, sent over real loopback HTTP to the same app on axum, actix-web and
//! rocket (`dbfiles serve`'s app) over one SQLite storage. Every request must get the expected
//! status, and the three frameworks must agree on the status, the headers that matter and the
//! body.

// Test code: an out-of-range index is a test failure.
#![allow(
    clippy::indexing_slicing,
    clippy::print_stderr,
    clippy::cast_possible_truncation
)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dbfiles::server::{start, Framework, RunningServer, ServerOptions};
use storage_core::{
    Error, Name, Result, SaveOptions, Storage, StorageExt, UploadTo, UrlSigner, Visibility,
};
use storage_http::{ServeConfig, UploadPolicy};

const HEADERS_THAT_MATTER: &[&str] = &[
    "content-type",
    "content-length",
    "content-range",
    "etag",
    "last-modified",
    "accept-ranges",
    "cache-control",
    "content-disposition",
    "x-content-type-options",
    "allow",
    "location",
];

const UPLOAD_LIMIT: u64 = 64 * 1024;

struct Request {
    what: &'static str,
    method: reqwest::Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<(String, Vec<u8>)>,
    expected: u16,
}

fn get(what: &'static str, path: &str, expected: u16) -> Request {
    Request {
        what,
        method: reqwest::Method::GET,
        path: path.to_owned(),
        headers: Vec::new(),
        body: None,
        expected,
    }
}

impl Request {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn method(mut self, method: reqwest::Method) -> Self {
        self.method = method;
        self
    }

    fn multipart(mut self, field: &str, filename: &str, content_type: &str, data: &[u8]) -> Self {
        let boundary = "matrix-boundary-7d1f";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.body = Some((format!("multipart/form-data; boundary={boundary}"), body));
        self
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    request: &Request,
) -> std::result::Result<Answer, reqwest::Error> {
    let mut builder = client.request(request.method.clone(), format!("{base}{}", request.path));
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    if let Some((content_type, body)) = &request.body {
        builder = builder
            .header("content-type", content_type)
            .body(body.clone());
    }
    let response = builder.send().await?;
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = HEADERS_THAT_MATTER
        .iter()
        .filter_map(|name| {
            let values: Vec<&str> = response
                .headers()
                .get_all(*name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| ((*name).to_owned(), values.join(", ")))
        })
        .collect();
    let mut body = response.bytes().await?;
    // Multipart boundaries are random per response: compare them as a placeholder.
    if let Some(boundary) = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .and_then(|(_, v)| v.strip_prefix("multipart/byteranges; boundary="))
        .map(str::to_owned)
    {
        for (name, value) in &mut headers {
            if name == "content-type" {
                *value = "multipart/byteranges; boundary=B".to_owned();
            }
        }
        body = Bytes::from(String::from_utf8_lossy(&body).replace(&boundary, "B"));
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_frameworks_answer_the_matrix_alike() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::backend("test", "tempdir", e))?;
    let url = format!("sqlite://{}/media.db", dir.path().display());
    // Public unless said otherwise, so the serving rules can be checked without signatures; the
    // private cases below opt in.
    let database = storage_diesel::DatabaseOptions::new()
        .migrate_on_connect(true)
        .default_visibility(Visibility::Public);
    let any = storage_diesel::connect_url(&url, database).await?;
    let storage: Arc<dyn Storage> = any.storage();

    let text: Vec<u8> = (0..1000u32)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[(i % 36) as usize])
        .collect();
    let keep = SaveOptions::new().keep_name(true);
    let a = storage.save_with("docs/a.txt", text.clone(), &keep).await?;
    storage
        .save_with("img/p.png", storage_conformance::png_header(4, 3), &keep)
        .await?;
    storage
        .save_with("page.html", "<script>alert(1)</script>", &keep)
        .await?;
    storage
        .save_with(
            "icon.svg",
            "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            &keep,
        )
        .await?;
    storage.save_with("résumé.pdf", "%PDF-1.4", &keep).await?;
    let private = SaveOptions::new()
        .keep_name(true)
        .visibility(Visibility::Private);
    let plan = storage
        .save_with("private/plan.pdf", "%PDF secret", &private)
        .await?;
    let signer = UrlSigner::new("current secret").with_previous_secrets(["previous secret"]);
    let now = std::time::UNIX_EPOCH
        .elapsed()
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let valid = signer.sign(&plan.name, Duration::from_secs(300));
    let expired = signer.sign_until(&plan.name, now.saturating_sub(5));
    let tampered_path = signer.sign(&Name::new("private/other.pdf")?, Duration::from_secs(300));
    let tampered_expiry = {
        let expires = valid.split('&').next().unwrap_or_default().to_owned();
        valid.replace(&expires, &format!("expires={}", now + 999_999))
    };
    let old_secret = UrlSigner::new("previous secret").sign(&plan.name, Duration::from_secs(300));
    let retired_secret =
        UrlSigner::new("retired secret").sign(&plan.name, Duration::from_secs(300));

    let policy = UploadPolicy::new()
        .max_file_size(UPLOAD_LIMIT)
        .max_request_size(UPLOAD_LIMIT * 2)
        .save_options(
            SaveOptions::new()
                .upload_to(UploadTo::template("uploads/"))
                .overwrite(true),
        );
    let mut servers: Vec<(Framework, RunningServer)> = Vec::new();
    for framework in Framework::ALL {
        let serve = ServeConfig::new()
            .signer(signer.clone())
            .authorize(|access| {
                access
                    .headers
                    .get("x-user")
                    .is_some_and(|user| user == "owner")
            });
        let options = ServerOptions::new(([127, 0, 0, 1], 0).into())
            .upload_policy(policy.clone())
            .serve_config(serve);
        servers.push((framework, start(framework, storage.clone(), options).await?));
    }

    let etag = a.etag.clone();
    let modified = storage.metadata(&a.name).await?.modified;
    let date = |t: std::time::SystemTime| {
        let mut h = http::HeaderMap::new();
        headers_for_date(&mut h, t);
        h.get("last-modified")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let future = date(modified + Duration::from_secs(3600));
    let past = date(modified - Duration::from_secs(3600));
    let big = vec![b'x'; (UPLOAD_LIMIT + 1) as usize];

    let matrix = vec![
        get("GET", "/media/docs/a.txt", 200),
        get("HEAD", "/media/docs/a.txt", 200).method(reqwest::Method::HEAD),
        get("If-None-Match", "/media/docs/a.txt", 304).header("if-none-match", etag.clone()),
        get("If-Match mismatch", "/media/docs/a.txt", 412).header("if-match", "\"nope\""),
        get("If-Modified-Since", "/media/docs/a.txt", 304)
            .header("if-modified-since", future.clone()),
        get("If-Unmodified-Since", "/media/docs/a.txt", 412)
            .header("if-unmodified-since", past.clone()),
        get("single range", "/media/docs/a.txt", 206).header("range", "bytes=0-9"),
        get("suffix range", "/media/docs/a.txt", 206).header("range", "bytes=-10"),
        get("multi range", "/media/docs/a.txt", 206).header("range", "bytes=0-9,20-29"),
        get("overlapping ranges", "/media/docs/a.txt", 206).header("range", "bytes=0-9,5-14"),
        get("unsatisfiable range", "/media/docs/a.txt", 416).header("range", "bytes=5000-"),
        get("If-Range current", "/media/docs/a.txt", 206)
            .header("range", "bytes=0-9")
            .header("if-range", etag.clone()),
        get("If-Range stale", "/media/docs/a.txt", 200)
            .header("range", "bytes=0-9")
            .header("if-range", "\"stale\""),
        get("png inline", "/media/img/p.png", 200),
        get("html attachment", "/media/page.html", 200),
        get("svg attachment", "/media/icon.svg", 200),
        get("non-ASCII name", "/media/r%C3%A9sum%C3%A9.pdf", 200),
        get("traversal", "/media/..%2F..%2Fetc%2Fpasswd", 400),
        get("backslash traversal", "/media/..%5C..%5Cetc%5Cpasswd", 400),
        get("NUL", "/media/a%00b.txt", 400),
        get("missing", "/media/missing.txt", 404),
        get("the media root", "/media/", 404),
        get("a directory", "/media/docs/", 404),
        get("POST to a file", "/media/docs/a.txt", 405).method(reqwest::Method::POST),
        get("upload", "/upload", 200)
            .method(reqwest::Method::POST)
            .multipart("file", "../../hello there.txt", "text/plain", b"hello"),
        get("upload over the limit", "/upload", 413)
            .method(reqwest::Method::POST)
            .multipart("file", "big.bin", "application/octet-stream", &big),
        // A browser's form post without script: back to the page, or a page saying why.
        get("form post", "/upload", 303)
            .method(reqwest::Method::POST)
            .header("accept", "text/html")
            .multipart("file", "form.txt", "text/plain", b"from a form"),
        get("form post over the limit", "/upload", 413)
            .method(reqwest::Method::POST)
            .header("accept", "text/html")
            .multipart("file", "big.bin", "application/octet-stream", &big),
        get("non-image to image route", "/upload-image", 415)
            .method(reqwest::Method::POST)
            .multipart("file", "x.png", "image/png", b"not an image"),
        get("image upload", "/upload-image", 200)
            .method(reqwest::Method::POST)
            .multipart(
                "file",
                "p.png",
                "image/png",
                &storage_conformance::png_header(2, 2),
            ),
        // A PNG that is also a page, named as one: stored under the type its bytes show.
        get("image sent as html", "/upload-image", 200)
            .method(reqwest::Method::POST)
            .multipart(
                "file",
                "me.html",
                "text/html",
                &storage_conformance::png_with_html(3, 2),
            ),
        get("private: no signature", "/media/private/plan.pdf", 403),
        get(
            "private: signed",
            &format!("/media/private/plan.pdf?{valid}"),
            200,
        ),
        get(
            "private: expired",
            &format!("/media/private/plan.pdf?{expired}"),
            403,
        ),
        get(
            "private: tampered path",
            &format!("/media/private/plan.pdf?{tampered_path}"),
            403,
        ),
        get(
            "private: tampered expiry",
            &format!("/media/private/plan.pdf?{tampered_expiry}"),
            403,
        ),
        get(
            "private: previous secret",
            &format!("/media/private/plan.pdf?{old_secret}"),
            200,
        ),
        get(
            "private: retired secret",
            &format!("/media/private/plan.pdf?{retired_secret}"),
            403,
        ),
        get("private: the app allows", "/media/private/plan.pdf", 200).header("x-user", "owner"),
        get("private: the app refuses", "/media/private/plan.pdf", 403)
            .header("x-user", "stranger"),
        get("public: no signature needed", "/media/docs/a.txt", 200).header("x-user", "stranger"),
    ];

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::backend("test", "client", e))?;
    let mut disagreements = Vec::new();
    for request in &matrix {
        let mut answers = Vec::new();
        for (framework, server) in &servers {
            let base = format!("http://{}", server.addr());
            let answer = send(&client, &base, request)
                .await
                .map_err(|e| Error::backend("test", request.what, e))?;
            assert_eq!(
                answer.status, request.expected,
                "{framework}: {}: {answer:?}",
                request.what
            );
            answers.push((framework, answer));
        }
        let (first_framework, first) = &answers[0];
        for (framework, answer) in &answers[1..] {
            if answer != first {
                disagreements.push(format!(
                    "{}: {first_framework} {first:?}\n    vs {framework} {answer:?}",
                    request.what
                ));
            }
        }
        if request.what.starts_with("private:") {
            let body = String::from_utf8_lossy(&answers[0].1.body).into_owned();
            let expected_body = match request.what {
                "private: no signature" | "private: the app refuses" => {
                    "forbidden: signature missing\n"
                }
                "private: expired" => "forbidden: signature expired\n",
                "private: tampered path"
                | "private: tampered expiry"
                | "private: retired secret" => "forbidden: signature invalid\n",
                _ => "%PDF secret",
            };
            assert_eq!(body, expected_body, "{}", request.what);
            let cache = answers[0]
                .1
                .headers
                .iter()
                .find(|(n, _)| n == "cache-control")
                .map(|(_, v)| v.as_str());
            let expected_cache = if request.expected == 200 {
                "private, no-cache"
            } else {
                "no-store"
            };
            assert_eq!(cache, Some(expected_cache), "{}", request.what);
        }
        if request.what.starts_with("form post") {
            let (_, answer) = &answers[0];
            let header = |name: &str| {
                answer
                    .headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            let body = String::from_utf8_lossy(&answer.body).into_owned();
            if request.expected == 303 {
                assert_eq!(header("location").as_deref(), Some("/"), "{body}");
                // The policy overwrites, so the three posts share one name.
                assert!(
                    storage.exists("uploads/form.txt").await?,
                    "the form post stored nothing"
                );
            } else {
                assert_eq!(
                    header("content-type").as_deref(),
                    Some("text/html; charset=utf-8")
                );
                assert!(
                    body.contains("<p role=\"alert\">Upload refused: the upload is larger than the 64.0 KiB limit.</p>")
                        && body.contains("Nothing was stored."),
                    "{body}"
                );
            }
        }
        if request.what == "image sent as html" {
            for (framework, answer) in &answers {
                let body = String::from_utf8_lossy(&answer.body);
                assert!(body.contains("uploads/me.png"), "{framework}: {body}");
            }
            assert_eq!(
                storage.read_to_bytes("uploads/me.png").await?.as_ref(),
                storage_conformance::png_with_html(3, 2).as_slice()
            );
            assert!(
                !storage.exists("uploads/me.html").await?,
                "an image was stored under the client's .html"
            );
        }
        if request.what == "upload over the limit" {
            assert!(
                !storage.exists("uploads/big.bin").await?,
                "an over-limit upload left a file"
            );
        }
    }
    // The page at `/` lists stored files as escaped links (images as thumbnails), on every
    // framework.
    storage.save_with("x/<b>bold</b>.txt", "x", &keep).await?;
    let mut pages = Vec::new();
    for (framework, server) in &servers {
        let page = client
            .get(format!("http://{}/", server.addr()))
            .send()
            .await
            .map_err(|e| Error::backend("test", "index", e))?;
        assert_eq!(page.status().as_u16(), 200, "{framework}");
        let html = page
            .text()
            .await
            .map_err(|e| Error::backend("test", "index", e))?;
        assert!(
            html.contains("<a class=\"name\" href=\"/media/docs/a.txt\">docs/a.txt</a>"),
            "{framework}: {html}"
        );
        assert!(
            html.contains("<a class=\"name\" href=\"/media/r%C3%A9sum%C3%A9.pdf\">résumé.pdf</a>"),
            "{framework}"
        );
        assert!(
            html.contains("x/&lt;b&gt;bold&lt;/b&gt;.txt") && !html.contains("<b>bold"),
            "{framework}: names are escaped"
        );
        assert!(
            html.contains("enctype=\"multipart/form-data\""),
            "{framework}"
        );
        assert!(
            html.contains("<img class=\"thumb\" src=\"/media/img/p.png\"")
                && !html.contains("<img class=\"thumb\" src=\"/media/docs/a.txt\""),
            "{framework}: only images get thumbnails"
        );
        pages.push(html);
    }
    assert!(
        pages.windows(2).all(|w| w[0] == w[1]),
        "the index pages differ"
    );
    for (_, server) in servers {
        server.stop().await;
    }
    assert!(
        disagreements.is_empty(),
        "frameworks disagree:\n{}",
        disagreements.join("\n")
    );
    assert_eq!(
        storage.read_to_bytes("uploads/hello_there.txt").await?,
        Bytes::from_static(b"hello")
    );
    assert!(storage.exists(Name::new("uploads/p.png")?.as_str()).await?);
    Ok(())
}

fn headers_for_date(headers: &mut http::HeaderMap, time: std::time::SystemTime) {
    let value = httpdate_string(time);
    if let Ok(value) = http::HeaderValue::from_str(&value) {
        headers.insert("last-modified", value);
    }
}

fn httpdate_string(time: std::time::SystemTime) -> String {
    httpdate::fmt_http_date(time)
}
