//! Serving a stored file: [`serve_decision`] decides status and headers from the request and the
//! file's metadata; [`serve`] carries it out against a storage.

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::StreamExt;
use headers::{
    ETag, HeaderMapExt, IfMatch, IfModifiedSince, IfNoneMatch, IfUnmodifiedSince, LastModified,
};
use http::header::{
    ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use storage_core::{ByteRange, ByteStream, Error, FileMeta, Name, Storage, UrlSigner, Visibility};

use crate::body::ResponseBody;
use crate::headers::{content_disposition, content_type_of, DEFAULT_INLINE_TYPES};
use crate::ranges::{resolve_range, RangeRequest};

/// `X-Content-Type-Options`.
const NOSNIFF: HeaderName = HeaderName::from_static("x-content-type-options");

/// What an app's access check sees about a request for a private file.
#[derive(Debug)]
#[non_exhaustive]
pub struct AccessRequest<'a> {
    /// The stored name.
    pub name: &'a Name,
    /// The file's metadata.
    pub meta: &'a FileMeta,
    /// The request method.
    pub method: &'a Method,
    /// The request headers (cookies, authorization, ...).
    pub headers: &'a HeaderMap,
    /// The query string, if any.
    pub query: Option<&'a str>,
}

/// The app's own check for private files ("the session user owns this file"): `true` lets the
/// request through without a signature.
pub type Authorize = Arc<dyn Fn(&AccessRequest<'_>) -> bool + Send + Sync>;

/// How files are served.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// `Cache-Control` for public files (default `no-cache`: caches keep the file but revalidate,
    /// which costs one 304 thanks to the strong ETag).
    pub cache_control: HeaderValue,
    /// `Cache-Control` for private files (default `private, no-cache`).
    pub private_cache_control: HeaderValue,
    /// Past this many ranges in one request the `Range` header is ignored (default 16).
    pub max_ranges: usize,
    /// Types served `inline`; everything else is an `attachment` (default
    /// [`DEFAULT_INLINE_TYPES`]).
    pub inline_types: Vec<String>,
    /// Checks the signatures of URLs for private files; without one, private files are served
    /// only when [`authorize`](Self::authorize) allows.
    pub signer: Option<UrlSigner>,
    /// The app's own check, tried before the signature.
    pub authorize: Option<Authorize>,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("cache_control", &self.cache_control)
            .field("private_cache_control", &self.private_cache_control)
            .field("max_ranges", &self.max_ranges)
            .field("inline_types", &self.inline_types)
            .field("signer", &self.signer)
            .field("authorize", &self.authorize.as_ref().map(|_| "Fn(..)"))
            .finish()
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            cache_control: HeaderValue::from_static("no-cache"),
            private_cache_control: HeaderValue::from_static("private, no-cache"),
            max_ranges: 16,
            inline_types: DEFAULT_INLINE_TYPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            signer: None,
            authorize: None,
        }
    }
}

impl ServeConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `Cache-Control` for public files; an invalid value keeps the default.
    #[must_use]
    pub fn cache_control(mut self, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.cache_control = value;
        }
        self
    }

    /// Sets the most ranges served in one request.
    #[must_use]
    pub fn max_ranges(mut self, max_ranges: usize) -> Self {
        self.max_ranges = max_ranges.max(1);
        self
    }

    /// Accepts signed URLs for private files.
    #[must_use]
    pub fn signer(mut self, signer: UrlSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The app's own access check for private files.
    #[must_use]
    pub fn authorize(
        mut self,
        check: impl Fn(&AccessRequest<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.authorize = Some(Arc::new(check));
        self
    }

    /// Sets the types served inline (`type/subtype` or `type/*`).
    #[must_use]
    pub fn inline_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inline_types = types.into_iter().map(Into::into).collect();
        self
    }
}

/// Which bytes a response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyPlan {
    /// No body (HEAD, 304, 412, 416, 405).
    Empty,
    /// The whole file.
    Whole,
    /// One range (206).
    Single(Range<u64>),
    /// Several ranges as `multipart/byteranges` (206).
    Multi {
        /// The multipart boundary.
        boundary: String,
        /// The ranges, sorted and coalesced.
        parts: Vec<Range<u64>>,
    },
}

/// What to answer, before any content is read.
#[derive(Debug, Clone)]
pub struct ServeDecision {
    /// The status.
    pub status: StatusCode,
    /// The headers, `Content-Length` included whenever there is a body length.
    pub headers: HeaderMap,
    /// The bytes to send.
    pub body: BodyPlan,
}

fn etag_of(meta: &FileMeta) -> Option<ETag> {
    if blank_inside_tag(&meta.etag) {
        return None;
    }
    meta.etag.parse().ok()
}

/// True when an entity-tag list has a space or tab inside a tag: a header value may hold them,
/// a tag may not, and the `headers` crate asserts on it in debug builds (found by fuzzing).
fn blank_inside_tag(text: &str) -> bool {
    let mut inside = false;
    for c in text.chars() {
        match c {
            '"' => inside = !inside,
            ' ' | '\t' if inside => return true,
            _ => {}
        }
    }
    false
}

/// [`blank_inside_tag`] for any value of the request header `name`.
fn header_has_blank_tag(request: &HeaderMap, name: &HeaderName) -> bool {
    request
        .get_all(name)
        .iter()
        .any(|v| v.to_str().is_ok_and(blank_inside_tag))
}

/// The latest time an HTTP date can say (9999-12-31 23:59:59 UTC).
const LAST_HTTP_DATE: u64 = 253_402_300_799;

/// `time` within what an HTTP date can say (1970 to 9999): `httpdate` panics outside it, and a
/// file's modification time is whatever its filesystem says (found by fuzzing).
fn http_time(time: SystemTime) -> SystemTime {
    let seconds = http_seconds(time).min(LAST_HTTP_DATE);
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds)
}

/// Seconds precision, as HTTP dates have.
fn http_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `If-Range` (RFC 9110 13.1.5): an entity tag must match strongly; a date must equal
/// `Last-Modified` exactly. `etag` and `modified` are the file's, as [`serve_decision`] read
/// them.
fn if_range_allows(
    value: &HeaderValue,
    meta: &FileMeta,
    etag: Option<&ETag>,
    modified: SystemTime,
) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let text = text.trim();
    if blank_inside_tag(text) {
        return false;
    }
    if text.starts_with('"') || text.starts_with("W/") {
        return match (text.parse::<ETag>(), etag) {
            // Strong comparison: neither may be weak and the tags must be equal.
            (Ok(_), Some(_)) if text.starts_with("W/") || meta.etag.starts_with("W/") => false,
            (Ok(asked), Some(current)) => asked == *current,
            _ => false,
        };
    }
    httpdate::parse_http_date(text).is_ok_and(|date| http_seconds(date) == http_seconds(modified))
}

/// Decides the response for `method` and the request `headers` on a file with metadata `meta`:
/// preconditions in RFC 9110 section 13.2.2 order (If-Match / If-Unmodified-Since -> 412,
/// If-None-Match / If-Modified-Since -> 304), then `Range` and `If-Range` (206, multipart 206,
/// 416, or 200), with safe `Content-Type`, `Content-Disposition` and caching headers.
pub fn serve_decision(
    method: &Method,
    request: &HeaderMap,
    meta: &FileMeta,
    config: &ServeConfig,
) -> ServeDecision {
    let mut headers = HeaderMap::new();
    headers.insert(NOSNIFF, HeaderValue::from_static("nosniff"));
    if method != Method::GET && method != Method::HEAD {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
        return ServeDecision {
            status: StatusCode::METHOD_NOT_ALLOWED,
            headers,
            body: BodyPlan::Empty,
        };
    }
    let etag = etag_of(meta);
    let modified = http_time(meta.modified);
    // Validators go on every answer about the file, 304 included.
    if let Some(etag) = &etag {
        headers.typed_insert(etag.clone());
    }
    headers.typed_insert(LastModified::from(modified));
    let cache_control = match meta.visibility {
        Visibility::Public => config.cache_control.clone(),
        Visibility::Private => config.private_cache_control.clone(),
    };
    headers.insert(CACHE_CONTROL, cache_control);

    // A tag with a blank in it matches no file; `*` matches any existing file, whatever its
    // own tag looks like (RFC 9110 13.1.1).
    let precondition_failed = if header_has_blank_tag(request, &IF_MATCH) {
        true
    } else if let Some(if_match) = request.typed_get::<IfMatch>() {
        !(if_match.is_any()
            || etag
                .as_ref()
                .is_some_and(|e| if_match.precondition_passes(e)))
    } else if let Some(since) = request.typed_get::<IfUnmodifiedSince>() {
        !since.precondition_passes(modified)
    } else {
        false
    };
    if precondition_failed {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
        return ServeDecision {
            status: StatusCode::PRECONDITION_FAILED,
            headers,
            body: BodyPlan::Empty,
        };
    }
    let not_modified = if header_has_blank_tag(request, &IF_NONE_MATCH) {
        false
    } else if let Some(if_none_match) = request.typed_get::<IfNoneMatch>() {
        if_none_match == IfNoneMatch::any()
            || etag
                .as_ref()
                .is_some_and(|e| !if_none_match.precondition_passes(e))
    } else if let Some(since) = request.typed_get::<IfModifiedSince>() {
        !since.is_modified(modified)
    } else {
        false
    };
    if not_modified {
        return ServeDecision {
            status: StatusCode::NOT_MODIFIED,
            headers,
            body: BodyPlan::Empty,
        };
    }

    let content_type = content_type_of(meta);
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        CONTENT_DISPOSITION,
        content_disposition(
            meta.name.file_name(),
            content_type.to_str().unwrap_or_default(),
            &config.inline_types,
        ),
    );

    // Range is defined for GET only, and If-Range can veto it.
    let range_header = request
        .get(RANGE)
        .filter(|_| method == Method::GET)
        .filter(|_| {
            request
                .get(IF_RANGE)
                .is_none_or(|v| if_range_allows(v, meta, etag.as_ref(), modified))
        })
        .and_then(|v| v.to_str().ok());
    let size = meta.size;
    let request_ranges = range_header.map_or(RangeRequest::Whole, |h| {
        resolve_range(h, size, config.max_ranges)
    });
    let head = method == Method::HEAD;
    let (status, body) = match request_ranges {
        RangeRequest::Whole => {
            headers.insert(CONTENT_TYPE, content_type);
            headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
            (StatusCode::OK, BodyPlan::Whole)
        }
        RangeRequest::Unsatisfiable => {
            headers.remove(CONTENT_DISPOSITION);
            headers.insert(CONTENT_RANGE, header_value(&format!("bytes */{size}")));
            headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
            return ServeDecision {
                status: StatusCode::RANGE_NOT_SATISFIABLE,
                headers,
                body: BodyPlan::Empty,
            };
        }
        RangeRequest::Ranges(ranges) => match ranges.as_slice() {
            [single] => {
                headers.insert(CONTENT_TYPE, content_type);
                headers.insert(CONTENT_RANGE, content_range(single, size));
                headers.insert(CONTENT_LENGTH, HeaderValue::from(single.end - single.start));
                (
                    StatusCode::PARTIAL_CONTENT,
                    BodyPlan::Single(single.clone()),
                )
            }
            _ => {
                let boundary = uuid::Uuid::new_v4().simple().to_string();
                let length = multipart_length(&ranges, size, &content_type, &boundary);
                headers.insert(
                    CONTENT_TYPE,
                    header_value(&format!("multipart/byteranges; boundary={boundary}")),
                );
                headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
                (
                    StatusCode::PARTIAL_CONTENT,
                    BodyPlan::Multi {
                        boundary,
                        parts: ranges,
                    },
                )
            }
        },
    };
    ServeDecision {
        status,
        headers,
        body: if head { BodyPlan::Empty } else { body },
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn content_range(range: &Range<u64>, size: u64) -> HeaderValue {
    header_value(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
}

/// The header block before one part of a `multipart/byteranges` body.
fn part_header(boundary: &str, content_type: &HeaderValue, range: &Range<u64>, size: u64) -> Bytes {
    Bytes::from(format!(
        "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Range: bytes {}-{}/{size}\r\n\r\n",
        content_type.to_str().unwrap_or("application/octet-stream"),
        range.start,
        range.end - 1
    ))
}

fn closing_delimiter(boundary: &str) -> Bytes {
    Bytes::from(format!("\r\n--{boundary}--\r\n"))
}

fn multipart_length(
    ranges: &[Range<u64>],
    size: u64,
    content_type: &HeaderValue,
    boundary: &str,
) -> u64 {
    let parts: u64 = ranges
        .iter()
        .map(|r| part_header(boundary, content_type, r, size).len() as u64 + (r.end - r.start))
        .sum();
    parts + closing_delimiter(boundary).len() as u64
}

/// The storage name a request path names, below the prefix the adapter is mounted at:
/// leading slashes dropped, percent-decoding applied once (so `a%20b.txt` is `a b.txt`, and an
/// encoded `..%2F` becomes a `../` that the name rules then refuse). A path that does not decode
/// to UTF-8 is a bad request.
pub fn name_from_path(path: &str) -> Result<String, Error> {
    let decoded = percent_encoding::percent_decode_str(path.trim_start_matches('/'))
        .decode_utf8()
        .map_err(|_| Error::BadRequest {
            reason: "the path is not UTF-8".to_owned(),
        })?;
    Ok(decoded.into_owned())
}

/// How a request may have a file.
enum Access {
    /// A public file, or the app's own check allowed it.
    Open,
    /// A signature valid until `expires` (seconds since the Unix epoch) allowed it.
    Signed { expires: u64 },
}

/// Whether a request may have the file: the app's check first, then the URL signature; `Err`
/// says why not.
fn access(
    name: &Name,
    meta: &FileMeta,
    query: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
    config: &ServeConfig,
) -> Result<Access, String> {
    if meta.visibility == Visibility::Public {
        return Ok(Access::Open);
    }
    let request = AccessRequest {
        name,
        meta,
        method,
        headers,
        query,
    };
    if config
        .authorize
        .as_ref()
        .is_some_and(|check| check(&request))
    {
        return Ok(Access::Open);
    }
    match &config.signer {
        Some(signer) => signer
            .verified_expiry(name, query, SystemTime::now())
            .map(|expires| Access::Signed { expires })
            .map_err(|e| e.to_string()),
        None => Err("private file".to_owned()),
    }
}

/// The `Cache-Control` of an answer that a signature allowed, when the signer keeps URLs the
/// same for a window ([`UrlSigner::with_expiry_window`](storage_core::UrlSigner)): the browser
/// may keep it, without asking again, until the signature expires. Without a window every page
/// view has a new URL, and the configured value stays.
fn signed_cache_control(access: &Access, config: &ServeConfig) -> Option<HeaderValue> {
    let Access::Signed { expires } = access else {
        return None;
    };
    let windowed = config
        .signer
        .as_ref()
        .is_some_and(|signer| !signer.expiry_window().is_zero());
    if !windowed {
        return None;
    }
    let now = http_seconds(SystemTime::now());
    HeaderValue::from_str(&format!("private, max-age={}", expires.saturating_sub(now))).ok()
}

/// 403 with a short reason (`signature missing`, `signature expired`, `signature invalid`).
fn forbidden(reason: &str) -> Response<ResponseBody> {
    plain_text(StatusCode::FORBIDDEN, format!("forbidden: {reason}\n"))
}

/// A short uncacheable plain-text answer, with the headers every `storage-http` answer carries
/// (`Content-Length`, `X-Content-Type-Options: nosniff`).
pub fn plain_text(status: StatusCode, text: String) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::from(text));
    *response.status_mut() = status;
    let length = response.body().len();
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(NOSNIFF, HeaderValue::from_static("nosniff"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// [`plain_text`] as an HTML page (`text/html; charset=utf-8`), same headers otherwise: for the
/// small pages an app renders around its uploads (the text is the caller's, escaped by it).
pub fn html_page(status: StatusCode, page: String) -> Response<ResponseBody> {
    let mut response = plain_text(status, page);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// The one HTTP status each storage error maps to.
pub fn status_for(error: &Error) -> StatusCode {
    match error {
        Error::NotFound { .. } | Error::EmptyField { .. } => StatusCode::NOT_FOUND,
        Error::AlreadyExists { .. } => StatusCode::CONFLICT,
        Error::SuspiciousPath { .. } | Error::InvalidName { .. } | Error::BadRequest { .. } => {
            StatusCode::BAD_REQUEST
        }
        Error::PermissionDenied { .. } => StatusCode::FORBIDDEN,
        Error::NotSupported { .. } => StatusCode::NOT_IMPLEMENTED,
        Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::UnsupportedType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::InvalidRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A short plain-text error response. Client errors say what was wrong with the request; server
/// errors say only that the service is unavailable (no backend detail, no path, no query).
pub fn error_response(error: &Error) -> Response<ResponseBody> {
    let status = status_for(error);
    let text = if status.is_server_error() {
        format!(
            "{}\n",
            status.canonical_reason().unwrap_or("Service Unavailable")
        )
    } else {
        format!("{error}\n")
    };
    plain_text(status, text)
}

/// Serves the file stored under `name` for a request with `method` and `headers`: everything a
/// good static server does (see [`serve_decision`]), reading only the bytes the answer needs.
/// Errors become [`error_response`]s. The adapters call this and stream the body.
pub async fn serve(
    storage: &dyn Storage,
    name: &str,
    query: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
    config: &ServeConfig,
) -> Response<ResponseBody> {
    match try_serve(storage, name, query, method, headers, config).await {
        Ok(response) => response,
        Err(e) => error_response(&e),
    }
}

/// [`serve`] for a request path below the adapter's mount point (see [`name_from_path`]).
pub async fn serve_path(
    storage: &dyn Storage,
    path: &str,
    query: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
    config: &ServeConfig,
) -> Response<ResponseBody> {
    match name_from_path(path) {
        Ok(name) => serve(storage, &name, query, method, headers, config).await,
        Err(e) => error_response(&e),
    }
}

async fn try_serve(
    storage: &dyn Storage,
    name: &str,
    query: Option<&str>,
    method: &Method,
    request: &HeaderMap,
    config: &ServeConfig,
) -> Result<Response<ResponseBody>, Error> {
    // `/media/` and `/media/dir/` name a directory, not a bad file name: no file is there, as
    // a static server answers (directories are never listed).
    if name.is_empty() || name.ends_with('/') {
        return Err(Error::NotFound {
            name: name.to_owned(),
        });
    }
    let name = Name::new(name)?;
    // A plain GET almost always sends the whole file: open it at once, so a backend that can
    // (the database backends) answers metadata and the first chunk in one round trip. Requests
    // with validators or ranges look at the metadata first and open only what they need.
    let plain_get = method == Method::GET
        && [
            RANGE,
            IF_MATCH,
            IF_NONE_MATCH,
            IF_MODIFIED_SINCE,
            IF_UNMODIFIED_SINCE,
        ]
        .iter()
        .all(|h| !request.contains_key(h));
    let mut opened_whole = None;
    let mut meta = if plain_get {
        let opened = storage.open(&name, None).await?;
        let meta = opened.meta.clone();
        opened_whole = Some(opened);
        meta
    } else {
        storage.metadata(&name).await?
    };
    // The file may be replaced between looking at it and opening it; then decide again on the
    // version actually opened (bounded: each round means another overwrite just happened).
    for _ in 0..3 {
        let allowed = match access(&name, &meta, query, method, request, config) {
            Ok(allowed) => allowed,
            Err(reason) => return Ok(forbidden(&reason)),
        };
        let mut decision = serve_decision(method, request, &meta, config);
        if let Some(cache) = signed_cache_control(&allowed, config) {
            decision.headers.insert(CACHE_CONTROL, cache);
        }
        let body = match &decision.body {
            BodyPlan::Empty => ResponseBody::empty(),
            BodyPlan::Whole if opened_whole.is_some() => {
                let opened = opened_whole.take().ok_or_else(|| {
                    Error::backend("http", "no open file", std::io::Error::other("missing"))
                })?;
                ResponseBody::sized(opened.stream, opened.range.end - opened.range.start)
            }
            BodyPlan::Whole | BodyPlan::Single(_) => {
                let range = match &decision.body {
                    BodyPlan::Single(r) => Some(ByteRange::new(r.start, r.end)),
                    _ => None,
                };
                let opened = storage.open(&name, range).await?;
                if opened.meta.etag != meta.etag {
                    meta = opened.meta;
                    continue;
                }
                ResponseBody::sized(opened.stream, opened.range.end - opened.range.start)
            }
            BodyPlan::Multi { boundary, parts } => {
                let length = decision
                    .headers
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(0);
                let content_type = content_type_of(&meta);
                ResponseBody::sized(
                    multipart_stream(storage, &name, &meta, parts, boundary, &content_type).await?,
                    length,
                )
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = decision.status;
        *response.headers_mut() = decision.headers;
        return Ok(response);
    }
    Err(Error::backend(
        "http",
        "the file kept changing while being served",
        std::io::Error::from(std::io::ErrorKind::Interrupted),
    ))
}

/// The parts of a `multipart/byteranges` body. Every part is opened before the response starts,
/// so each reads the same version (checked by ETag) and a failure is still a proper error status.
async fn multipart_stream(
    storage: &dyn Storage,
    name: &Name,
    meta: &FileMeta,
    parts: &[Range<u64>],
    boundary: &str,
    content_type: &HeaderValue,
) -> Result<ByteStream, Error> {
    let mut pieces: Vec<ByteStream> = Vec::with_capacity(parts.len() * 2 + 1);
    for range in parts {
        let opened = storage
            .open(name, Some(ByteRange::new(range.start, range.end)))
            .await?;
        if opened.meta.etag != meta.etag {
            return Err(Error::backend(
                "http",
                "the file changed while being served",
                std::io::Error::from(std::io::ErrorKind::Interrupted),
            ));
        }
        pieces.push(storage_core::bytes_stream(part_header(
            boundary,
            content_type,
            range,
            meta.size,
        )));
        pieces.push(opened.stream);
    }
    pieces.push(storage_core::bytes_stream(closing_delimiter(boundary)));
    Ok(Box::pin(futures::stream::iter(pieces).flatten()))
}
