//! `serve` against real storages: every header rule, precondition and range case.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use storage_core::naming::NameCandidates;
use storage_core::{
    ByteRange, ByteStream, Capabilities, Error, FileMeta, InMemoryStorage, Listing, Name,
    OpenedFile, PutOptions, Result, SaveOptions, Storage, StorageExt, Visibility,
};
use storage_http::{serve, ResponseBody, ServeConfig};

const BODY: &[u8] = b"0123456789abcdefghij"; // 20 bytes

async fn storage_with(name: &str, content: &'static [u8]) -> Result<InMemoryStorage> {
    let storage = InMemoryStorage::new().with_default_visibility(Visibility::Public);
    storage
        .save_with(name, content, &SaveOptions::new().keep_name(true))
        .await?;
    Ok(storage)
}

fn request(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            *name,
            value
                .parse()
                .unwrap_or_else(|_| http::HeaderValue::from_static("")),
        );
    }
    headers
}

async fn get(
    storage: &dyn Storage,
    name: &str,
    pairs: &[(&'static str, &str)],
) -> Response<ResponseBody> {
    serve(
        storage,
        name,
        None,
        &Method::GET,
        &request(pairs),
        &ServeConfig::new(),
    )
    .await
}

async fn body(response: Response<ResponseBody>) -> Result<Bytes> {
    storage_core::collect_bytes(response.into_body().into_stream()).await
}

fn header<'a>(response: &'a Response<ResponseBody>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn http_date(time: SystemTime) -> String {
    httpdate_fmt(time)
}

fn httpdate_fmt(time: SystemTime) -> String {
    // Format through the same crate the server uses.
    let mut headers = HeaderMap::new();
    headers::HeaderMapExt::typed_insert(&mut headers, headers::LastModified::from(time));
    headers
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn get_sends_the_file_with_every_header() -> Result<()> {
    let storage = storage_with("docs/a.txt", BODY).await?;
    let meta = storage.metadata(&Name::new("docs/a.txt")?).await?;
    let response = get(&storage, "docs/a.txt", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-length"), "20");
    assert_eq!(header(&response, "accept-ranges"), "bytes");
    assert_eq!(header(&response, "etag"), meta.etag);
    assert_eq!(header(&response, "last-modified"), http_date(meta.modified));
    assert_eq!(header(&response, "content-type"), "text/plain");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&response, "content-disposition"),
        "inline; filename=\"a.txt\""
    );
    assert_eq!(header(&response, "cache-control"), "no-cache");
    assert_eq!(body(response).await?, Bytes::from_static(BODY));
    Ok(())
}

#[tokio::test]
async fn head_sends_headers_only_and_ignores_range() -> Result<()> {
    let storage = storage_with("a.bin", BODY).await?;
    let response = serve(
        &storage,
        "a.bin",
        None,
        &Method::HEAD,
        &request(&[("range", "bytes=0-1")]),
        &ServeConfig::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-length"), "20");
    assert!(body(response).await?.is_empty());
    let post = serve(
        &storage,
        "a.bin",
        None,
        &Method::POST,
        &HeaderMap::new(),
        &ServeConfig::new(),
    )
    .await;
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&post, "allow"), "GET, HEAD");
    Ok(())
}

#[tokio::test]
async fn preconditions_follow_rfc_9110_order() -> Result<()> {
    let storage = storage_with("a.bin", BODY).await?;
    let meta = storage.metadata(&Name::new("a.bin")?).await?;
    let etag = meta.etag.clone();
    let weak = format!("W/{etag}");
    let before = http_date(meta.modified - Duration::from_secs(3600));
    let after = http_date(meta.modified + Duration::from_secs(3600));
    let cases: Vec<(Vec<(&'static str, &str)>, StatusCode)> = vec![
        (
            vec![("if-match", "\"other\"")],
            StatusCode::PRECONDITION_FAILED,
        ),
        (vec![("if-match", &etag)], StatusCode::OK),
        (vec![("if-match", "*")], StatusCode::OK),
        (vec![("if-match", &weak)], StatusCode::PRECONDITION_FAILED), // strong comparison
        (
            vec![("if-unmodified-since", &before)],
            StatusCode::PRECONDITION_FAILED,
        ),
        (vec![("if-unmodified-since", &after)], StatusCode::OK),
        // If-Match wins over If-Unmodified-Since.
        (
            vec![("if-match", &etag), ("if-unmodified-since", &before)],
            StatusCode::OK,
        ),
        (vec![("if-none-match", &etag)], StatusCode::NOT_MODIFIED),
        (vec![("if-none-match", &weak)], StatusCode::NOT_MODIFIED), // weak comparison
        (
            vec![("if-none-match", "\"other\", \"more\"")],
            StatusCode::OK,
        ),
        (vec![("if-none-match", "*")], StatusCode::NOT_MODIFIED),
        (
            vec![("if-modified-since", &after)],
            StatusCode::NOT_MODIFIED,
        ),
        (vec![("if-modified-since", &before)], StatusCode::OK),
        // If-None-Match wins over If-Modified-Since.
        (
            vec![
                ("if-none-match", "\"other\""),
                ("if-modified-since", &after),
            ],
            StatusCode::OK,
        ),
        // 412 is decided before 304.
        (
            vec![("if-match", "\"other\""), ("if-none-match", &etag)],
            StatusCode::PRECONDITION_FAILED,
        ),
    ];
    for (pairs, expected) in cases {
        let response = get(&storage, "a.bin", &pairs).await;
        assert_eq!(response.status(), expected, "{pairs:?}");
        if expected == StatusCode::NOT_MODIFIED {
            assert_eq!(header(&response, "etag"), etag);
            assert!(response.headers().get("content-length").is_none());
            assert!(body(response).await?.is_empty());
        }
    }
    Ok(())
}

#[tokio::test]
async fn ranges_single_suffix_multi_and_unsatisfiable() -> Result<()> {
    let storage = storage_with("a.bin", BODY).await?;
    let single = get(&storage, "a.bin", &[("range", "bytes=2-4")]).await;
    assert_eq!(single.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&single, "content-range"), "bytes 2-4/20");
    assert_eq!(header(&single, "content-length"), "3");
    assert_eq!(body(single).await?, Bytes::from_static(b"234"));

    let suffix = get(&storage, "a.bin", &[("range", "bytes=-3")]).await;
    assert_eq!(header(&suffix, "content-range"), "bytes 17-19/20");
    assert_eq!(body(suffix).await?, Bytes::from_static(b"hij"));

    // Overlapping and adjacent ranges coalesce into one.
    let coalesced = get(&storage, "a.bin", &[("range", "bytes=0-3,2-5,6-7")]).await;
    assert_eq!(header(&coalesced, "content-range"), "bytes 0-7/20");
    assert_eq!(body(coalesced).await?, Bytes::from_static(b"01234567"));

    let multi = get(&storage, "a.bin", &[("range", "bytes=0-1,-2")]).await;
    assert_eq!(multi.status(), StatusCode::PARTIAL_CONTENT);
    let content_type = header(&multi, "content-type").to_owned();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_default()
        .to_owned();
    assert!(!boundary.is_empty(), "{content_type}");
    let length: usize = header(&multi, "content-length").parse().unwrap_or(0);
    let got = body(multi).await?;
    let expected = format!(
        "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-1/20\r\n\r\n01\
         \r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 18-19/20\r\n\r\nij\
         \r\n--{boundary}--\r\n"
    );
    assert_eq!(got, Bytes::from(expected));
    assert_eq!(got.len(), length);

    let unsatisfiable = get(&storage, "a.bin", &[("range", "bytes=20-")]).await;
    assert_eq!(unsatisfiable.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&unsatisfiable, "content-range"), "bytes */20");
    // Too many ranges: ignored, the whole file.
    let many = (0..17)
        .map(|i| format!("{i}-{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let ignored = get(&storage, "a.bin", &[("range", &format!("bytes={many}"))]).await;
    assert_eq!(ignored.status(), StatusCode::OK);
    assert_eq!(body(ignored).await?.len(), 20);
    Ok(())
}

#[tokio::test]
async fn if_range_decides_between_206_and_200() -> Result<()> {
    let storage = storage_with("a.bin", BODY).await?;
    let meta = storage.metadata(&Name::new("a.bin")?).await?;
    let same_date = http_date(meta.modified);
    let other_date = http_date(meta.modified - Duration::from_secs(60));
    let weak = format!("W/{}", meta.etag);
    for (if_range, expected) in [
        (meta.etag.as_str(), StatusCode::PARTIAL_CONTENT),
        ("\"stale\"", StatusCode::OK),
        (weak.as_str(), StatusCode::OK),
        (same_date.as_str(), StatusCode::PARTIAL_CONTENT),
        (other_date.as_str(), StatusCode::OK),
        ("garbage", StatusCode::OK),
    ] {
        let response = get(
            &storage,
            "a.bin",
            &[("range", "bytes=0-0"), ("if-range", if_range)],
        )
        .await;
        assert_eq!(response.status(), expected, "If-Range: {if_range}");
    }
    Ok(())
}

#[tokio::test]
async fn dispositions_and_types_are_safe() -> Result<()> {
    let storage = InMemoryStorage::new().with_default_visibility(Visibility::Public);
    let keep = SaveOptions::new().keep_name(true);
    for name in ["p.png", "x.html", "y.svg", "résumé.pdf", "unknown.zzz"] {
        storage.save_with(name, "x", &keep).await?;
    }
    let cases = [
        ("p.png", "image/png", "inline; filename=\"p.png\""),
        ("x.html", "text/html", "attachment; filename=\"x.html\""),
        ("y.svg", "image/svg+xml", "attachment; filename=\"y.svg\""),
        (
            "résumé.pdf",
            "application/pdf",
            "inline; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
        ),
        (
            "unknown.zzz",
            "application/octet-stream",
            "attachment; filename=\"unknown.zzz\"",
        ),
    ];
    for (name, content_type, disposition) in cases {
        let response = get(&storage, name, &[]).await;
        assert_eq!(header(&response, "content-type"), content_type, "{name}");
        assert_eq!(
            header(&response, "content-disposition"),
            disposition,
            "{name}"
        );
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    }
    let private = SaveOptions::new().visibility(Visibility::Private);
    storage.save_with("secret.txt", "s", &private).await?;
    let owner = ServeConfig::new().authorize(|_| true);
    let response = serve(
        &storage,
        "secret.txt",
        None,
        &Method::GET,
        &HeaderMap::new(),
        &owner,
    )
    .await;
    assert_eq!(header(&response, "cache-control"), "private, no-cache");
    Ok(())
}

#[tokio::test]
async fn errors_map_to_statuses_without_leaking() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::backend("test", "tempdir", e))?;
    let storage = storage_core::FileSystemStorage::new(dir.path())?;
    let location = dir.path().display().to_string();
    for (name, status) in [
        ("missing.txt", StatusCode::NOT_FOUND),
        ("../etc/passwd", StatusCode::BAD_REQUEST),
        ("/etc/passwd", StatusCode::BAD_REQUEST),
        ("a/%00", StatusCode::NOT_FOUND),
        ("a\0b", StatusCode::BAD_REQUEST),
    ] {
        let response = get(&storage, name, &[]).await;
        assert_eq!(response.status(), status, "{name:?}");
        assert_eq!(
            header(&response, "content-type"),
            "text/plain; charset=utf-8"
        );
        let text = String::from_utf8_lossy(&body(response).await?).into_owned();
        assert!(!text.contains(&location), "{text}");
    }
    let broken = Broken;
    let response = get(&broken, "a.txt", &[]).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = String::from_utf8_lossy(&body(response).await?).into_owned();
    assert_eq!(text, "Service Unavailable\n");
    // A model field with no file is a missing file to a client.
    let empty = storage_core::Error::EmptyField {
        field: "photo".to_owned(),
    };
    assert_eq!(storage_http::status_for(&empty), StatusCode::NOT_FOUND);
    Ok(())
}

/// A backend whose database is down.
#[derive(Debug)]
struct Broken;

fn down() -> Error {
    Error::backend(
        "postgres",
        "cannot connect to postgres database 'app' at db.internal:5432",
        std::io::Error::other("refused"),
    )
}

#[async_trait::async_trait]
impl Storage for Broken {
    fn backend_name(&self) -> &'static str {
        "broken"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
    }
    async fn put_new(
        &self,
        _: &mut NameCandidates,
        _: ByteStream,
        _: &PutOptions,
    ) -> Result<FileMeta> {
        Err(down())
    }
    async fn put_overwrite(&self, _: &Name, _: ByteStream, _: &PutOptions) -> Result<FileMeta> {
        Err(down())
    }
    async fn open(&self, _: &Name, _: Option<ByteRange>) -> Result<OpenedFile> {
        Err(down())
    }
    async fn metadata(&self, _: &Name) -> Result<FileMeta> {
        Err(down())
    }
    async fn remove(&self, _: &Name) -> Result<bool> {
        Err(down())
    }
    async fn listdir(&self, _: Option<&Name>) -> Result<Listing> {
        Err(down())
    }
    async fn url(&self, _: &Name, _: Option<Duration>) -> Result<String> {
        Err(down())
    }
}

/// A storage whose file is overwritten right after `serve` looks at its metadata.
#[derive(Debug)]
struct Racing {
    inner: InMemoryStorage,
    raced: AtomicBool,
}

#[async_trait::async_trait]
impl Storage for Racing {
    fn backend_name(&self) -> &'static str {
        "racing"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn put_new(
        &self,
        n: &mut NameCandidates,
        c: ByteStream,
        o: &PutOptions,
    ) -> Result<FileMeta> {
        self.inner.put_new(n, c, o).await
    }
    async fn put_overwrite(&self, n: &Name, c: ByteStream, o: &PutOptions) -> Result<FileMeta> {
        self.inner.put_overwrite(n, c, o).await
    }
    async fn open(&self, n: &Name, r: Option<ByteRange>) -> Result<OpenedFile> {
        self.inner.open(n, r).await
    }
    async fn metadata(&self, n: &Name) -> Result<FileMeta> {
        let meta = self.inner.metadata(n).await?;
        if !self.raced.swap(true, Ordering::SeqCst) {
            let overwrite = SaveOptions::new().overwrite(true).keep_name(true);
            self.inner
                .save_with(n.as_str(), "a different, longer version", &overwrite)
                .await?;
        }
        Ok(meta)
    }
    async fn remove(&self, n: &Name) -> Result<bool> {
        self.inner.delete(n).await
    }
    async fn listdir(&self, d: Option<&Name>) -> Result<Listing> {
        self.inner.listdir(d).await
    }
    async fn url(&self, n: &Name, v: Option<Duration>) -> Result<String> {
        self.inner.url(n, v).await
    }
}

#[tokio::test]
async fn a_file_replaced_mid_request_is_served_consistently() -> Result<()> {
    let racing = Racing {
        inner: storage_with("a.txt", BODY).await?,
        raced: AtomicBool::new(false),
    };
    // A revalidating request looks at the metadata first (a plain GET opens at once).
    let response = get(&racing, "a.txt", &[("if-none-match", "\"other\"")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let current = racing.inner.metadata(&Name::new("a.txt")?).await?;
    // Headers and body describe the same version: the new one.
    assert_eq!(header(&response, "etag"), current.etag);
    assert_eq!(
        header(&response, "content-length"),
        current.size.to_string()
    );
    assert_eq!(
        body(response).await?,
        Bytes::from_static(b"a different, longer version")
    );
    Ok(())
}

/// Private files: signatures and the app's own check.
#[tokio::test]
async fn private_files_need_a_signature_or_the_apps_permission() -> Result<()> {
    use storage_core::UrlSigner;
    let storage = InMemoryStorage::new();
    storage.save("secret/plan.pdf", "%PDF secret").await?; // private: the default
    storage
        .save_with(
            "open.txt",
            "hello",
            &SaveOptions::new().visibility(Visibility::Public),
        )
        .await?;
    let name = Name::new("secret/plan.pdf")?;
    let signer = UrlSigner::new("new secret").with_previous_secrets(["old secret"]);
    let config = ServeConfig::new()
        .signer(signer.clone())
        .authorize(|access| access.headers.get("x-user").is_some_and(|u| u == "owner"));
    let fetch = |query: Option<String>, user: Option<&'static str>| {
        let (storage, config) = (&storage, config.clone());
        async move {
            let mut headers = HeaderMap::new();
            if let Some(user) = user {
                headers.insert("x-user", http::HeaderValue::from_static(user));
            }
            serve(
                storage,
                "secret/plan.pdf",
                query.as_deref(),
                &Method::GET,
                &headers,
                &config,
            )
            .await
        }
    };
    let now = std::time::UNIX_EPOCH
        .elapsed()
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let valid = signer.sign(&name, Duration::from_secs(60));
    let expired = signer.sign_until(&name, now - 10);
    let other_name = signer.sign(&Name::new("secret/other.pdf")?, Duration::from_secs(60));
    let stretched = {
        let expires = valid.split('&').next().unwrap_or_default().to_owned();
        valid.replace(&expires, &format!("expires={}", now + 99_999))
    };
    let old = UrlSigner::new("old secret").sign(&name, Duration::from_secs(60));
    let revoked = UrlSigner::new("retired secret").sign(&name, Duration::from_secs(60));
    // (what, query, x-user header, status, body)
    type Case = (
        &'static str,
        Option<String>,
        Option<&'static str>,
        StatusCode,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "no signature",
            None,
            None,
            StatusCode::FORBIDDEN,
            "forbidden: signature missing\n",
        ),
        (
            "valid",
            Some(valid.clone()),
            None,
            StatusCode::OK,
            "%PDF secret",
        ),
        (
            "expired",
            Some(expired),
            None,
            StatusCode::FORBIDDEN,
            "forbidden: signature expired\n",
        ),
        (
            "tampered path",
            Some(other_name),
            None,
            StatusCode::FORBIDDEN,
            "forbidden: signature invalid\n",
        ),
        (
            "tampered expiry",
            Some(stretched),
            None,
            StatusCode::FORBIDDEN,
            "forbidden: signature invalid\n",
        ),
        ("old secret", Some(old), None, StatusCode::OK, "%PDF secret"),
        (
            "retired secret",
            Some(revoked),
            None,
            StatusCode::FORBIDDEN,
            "forbidden: signature invalid\n",
        ),
        (
            "app allows",
            None,
            Some("owner"),
            StatusCode::OK,
            "%PDF secret",
        ),
        (
            "app refuses",
            None,
            Some("stranger"),
            StatusCode::FORBIDDEN,
            "forbidden: signature missing\n",
        ),
    ];
    for (what, query, user, status, text) in cases {
        let response = fetch(query, user).await;
        assert_eq!(response.status(), status, "{what}");
        if status == StatusCode::OK {
            assert_eq!(
                header(&response, "cache-control"),
                "private, no-cache",
                "{what}"
            );
        } else {
            assert_eq!(header(&response, "cache-control"), "no-store", "{what}");
            assert!(
                response.headers().get("etag").is_none(),
                "{what}: a refusal leaks no validator"
            );
        }
        assert_eq!(
            body(response).await?,
            Bytes::from(text.to_owned()),
            "{what}"
        );
    }
    // A public file needs no signature.
    let public = serve(
        &storage,
        "open.txt",
        None,
        &Method::GET,
        &HeaderMap::new(),
        &config,
    )
    .await;
    assert_eq!(public.status(), StatusCode::OK);
    // url() signs private files with the storage's signer, and the signature is accepted.
    let signing = InMemoryStorage::new().with_url_signer(signer.clone());
    signing.save("x/y.txt", "y").await?;
    let url = signing
        .url(&Name::new("x/y.txt")?, Some(Duration::from_secs(30)))
        .await?;
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    assert_eq!(path, "/media/x/y.txt");
    let served = serve(
        &signing,
        "x/y.txt",
        Some(query),
        &Method::GET,
        &HeaderMap::new(),
        &config,
    )
    .await;
    assert_eq!(served.status(), StatusCode::OK);
    Ok(())
}

/// With an expiry window a private file's signed URL stays the same, so its answer may be kept
/// until the signature expires; without one the configured `private, no-cache` stays, and a
/// file the app's own check allowed is never cached that way.
#[tokio::test]
async fn windowed_signatures_let_browsers_keep_the_file() -> Result<()> {
    use storage_core::UrlSigner;
    let storage = InMemoryStorage::new();
    storage.save("secret/plan.pdf", "%PDF secret").await?;
    let name = Name::new("secret/plan.pdf")?;
    let cache_control = |signer: UrlSigner, user: Option<&'static str>| {
        let storage = &storage;
        let name = name.clone();
        async move {
            let query = signer.sign(&name, Duration::from_secs(600));
            let config = ServeConfig::new()
                .signer(signer)
                .authorize(|access| access.headers.contains_key("x-user"));
            let mut headers = HeaderMap::new();
            if let Some(user) = user {
                headers.insert("x-user", http::HeaderValue::from_static(user));
            }
            let query = if user.is_some() { None } else { Some(query) };
            let answer = serve(
                storage,
                name.as_str(),
                query.as_deref(),
                &Method::GET,
                &headers,
                &config,
            )
            .await;
            assert_eq!(answer.status(), StatusCode::OK);
            answer
                .headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }
    };
    let hour = Duration::from_secs(3600);
    let windowed = UrlSigner::new("s").with_expiry_window(hour);
    let cached = cache_control(windowed.clone(), None).await;
    let max_age: u64 = cached
        .as_deref()
        .and_then(|v| v.strip_prefix("private, max-age="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // At least the ten minutes asked, at most one window more.
    assert!((599..=600 + 3600).contains(&max_age), "{cached:?}");
    assert_eq!(
        cache_control(UrlSigner::new("s"), None).await.as_deref(),
        Some("private, no-cache")
    );
    assert_eq!(
        cache_control(windowed, Some("owner")).await.as_deref(),
        Some("private, no-cache"),
        "the app's own check is per request, not per URL"
    );
    Ok(())
}

/// Found by fuzzing (fuzz/regressions/ranges_and_conditionals): a file modified before 1970 or
/// after 9999 made the HTTP date code panic; a blank inside an entity tag tripped a debug
/// assertion in the `headers` crate; `If-Match: *` failed and `If-None-Match: *` never matched
/// when the file's own tag did not parse.
#[test]
fn fuzzed_validators_never_panic_and_star_matches_any_file() -> Result<()> {
    let name = storage_core::Name::new("f.txt")?;
    let decide = |meta: &storage_core::FileMeta, pairs: &[(&'static str, &str)]| {
        storage_http::serve_decision(&Method::GET, &request(pairs), meta, &ServeConfig::new())
            .status
    };
    // Clamped into what an HTTP date can say: exactly one right answer each.
    let cases = [
        (
            SystemTime::UNIX_EPOCH - Duration::from_secs(3),
            "Thu, 01 Jan 1970 00:00:00 GMT",
            StatusCode::NOT_MODIFIED,
            StatusCode::OK,
        ),
        (
            SystemTime::UNIX_EPOCH + Duration::from_secs(700_060_666_066),
            "Fri, 31 Dec 9999 23:59:59 GMT",
            StatusCode::OK,
            StatusCode::PRECONDITION_FAILED,
        ),
    ];
    for (modified, last_modified, if_modified_since, if_unmodified_since) in cases {
        let meta = storage_core::FileMeta::new(name.clone(), 10, [7; 32], modified);
        let plain =
            storage_http::serve_decision(&Method::GET, &request(&[]), &meta, &ServeConfig::new());
        assert_eq!(plain.status, StatusCode::OK);
        assert_eq!(
            plain
                .headers
                .get("last-modified")
                .and_then(|v| v.to_str().ok()),
            Some(last_modified)
        );
        let date = "Sat, 01 Jan 2000 00:00:00 GMT";
        assert_eq!(
            decide(&meta, &[("if-modified-since", date)]),
            if_modified_since
        );
        assert_eq!(
            decide(&meta, &[("if-unmodified-since", date)]),
            if_unmodified_since
        );
    }
    let meta = storage_core::FileMeta::new(name.clone(), 10, [7; 32], SystemTime::now());
    assert_eq!(
        decide(&meta, &[("if-match", "\" x\"")]),
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        decide(&meta, &[("if-none-match", "\"a b\"")]),
        StatusCode::OK
    );
    assert_eq!(
        decide(&meta, &[("range", "bytes=0-1"), ("if-range", "\"a\tb\"")]),
        StatusCode::OK
    );
    let odd =
        storage_core::FileMeta::without_checksum(name, 10, "\"a b\"".to_owned(), SystemTime::now());
    assert_eq!(decide(&odd, &[]), StatusCode::OK);
    assert_eq!(decide(&odd, &[("if-match", "*")]), StatusCode::OK);
    assert_eq!(
        decide(&odd, &[("if-none-match", "*")]),
        StatusCode::NOT_MODIFIED
    );
    let unparsable = storage_core::FileMeta::without_checksum(
        storage_core::Name::new("g.txt")?,
        10,
        String::new(),
        SystemTime::now(),
    );
    assert_eq!(decide(&unparsable, &[("if-match", "*")]), StatusCode::OK);
    Ok(())
}
