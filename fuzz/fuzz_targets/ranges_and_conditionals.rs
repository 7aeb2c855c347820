//! `storage_http::resolve_range` and `storage_http::serve_decision` against independent oracles,
//! plus `storage_http::serve` over an `InMemoryStorage` for small files.
//!
//! Input (text, one item per line; see corpus/ranges_and_conditionals/ for examples):
//!
//! ```text
//! GET 1000 1700000000 16          method, file size, mtime (seconds, may be negative), max_ranges
//! range: bytes=0-9,20-            any request header, value taken as raw bytes
//! if-none-match: $ETAG            $ETAG, $DATE, $EARLIER, $LATER: the file's ETag / Last-Modified
//! x-etag: "abc"                   file metadata: its ETag (else derived from a SHA-256),
//! x-name: dir/a b.pdf             its name, its content type, private
//! x-type: application/pdf
//! x-private:
//! ```
//!
//! Invariants: never panics; every 206 range lies inside the file, is non-empty, sorted and
//! coalesced, at most `max_ranges` of them, and covers exactly what the Range header asks
//! (checked by a separate parser); 416 only when no range overlaps the file; 412 only with
//! If-Match / If-Unmodified-Since and 304 only with If-None-Match / If-Modified-Since, and exactly
//! when RFC 9110 says so for clean inputs; HEAD never gets 206; Content-Length / Content-Range
//! agree with the plan; no response header carries CR/LF/NUL; `serve` sends exactly
//! Content-Length bytes, and the right ones.

#![no_main]

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use storage_core::{FileMeta, InMemoryStorage, Name, StorageExt, Visibility};
use storage_fuzz::{block_on, check_headers_clean, debug, outside_http_dates};
use storage_http::{resolve_range, serve, serve_decision, BodyPlan, RangeRequest, ServeConfig};

/// Sizes up to 2^60: no real file is larger, and multipart lengths stay far from u64 overflow.
const MAX_SIZE: u64 = 1 << 60;
/// Files up to this size are also served for real from memory.
const SERVE_LIMIT: u64 = 4096;

struct Input {
    method: Method,
    size: u64,
    modified: SystemTime,
    max_ranges: usize,
    etag: Option<String>,
    name: Option<String>,
    content_type: Option<String>,
    private: bool,
    headers: Vec<(HeaderName, Vec<u8>)>,
}

fn parse_input(data: &[u8]) -> Option<Input> {
    let mut lines = data.split(|&b| b == b'\n');
    let first = String::from_utf8_lossy(lines.next()?).into_owned();
    let mut words = first.split_ascii_whitespace();
    let method = Method::from_bytes(words.next()?.as_bytes()).ok()?;
    let size = words.next().and_then(|w| w.parse::<u64>().ok()).unwrap_or(0) % (MAX_SIZE + 1);
    let (secs, nanos) = match words.next() {
        Some(w) => {
            let (s, n) = w.split_once('.').unwrap_or((w, "0"));
            (
                s.parse::<i64>().ok()?,
                n.parse::<u32>().unwrap_or(0) % 1_000_000_000,
            )
        }
        None => (1_700_000_000, 0),
    };
    let offset = Duration::new(secs.unsigned_abs(), nanos);
    let modified = if secs >= 0 {
        UNIX_EPOCH.checked_add(offset)?
    } else {
        UNIX_EPOCH.checked_sub(offset)?
    };
    let max_ranges = words
        .next()
        .and_then(|w| w.parse::<usize>().ok())
        .unwrap_or(16)
        .clamp(1, 64);
    let mut input = Input {
        method,
        size,
        modified,
        max_ranges,
        etag: None,
        name: None,
        content_type: None,
        private: false,
        headers: Vec::new(),
    };
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let text = || String::from_utf8_lossy(value).into_owned();
        match name.to_ascii_lowercase().as_slice() {
            b"x-etag" => input.etag = Some(text()),
            b"x-name" => input.name = Some(text()),
            b"x-type" => input.content_type = Some(text()),
            b"x-private" => input.private = true,
            _ => {
                if let Ok(name) = HeaderName::from_bytes(name) {
                    input.headers.push((name, value.to_vec()));
                }
            }
        }
    }
    Some(input)
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// `bytes=` specs resolved the RFC 9110 way, written apart from `resolve_range`: `None` when the
/// header is not a range set this parser understands (or holds a reversed spec, which makes
/// the whole header ignorable); otherwise the satisfiable ranges, clipped to the file.
fn oracle_ranges(header: &str, size: u64) -> Option<(Vec<Range<u64>>, usize)> {
    let unit = header.get(..6)?;
    if !unit.eq_ignore_ascii_case("bytes=") {
        return None;
    }
    let digits = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let mut out = Vec::new();
    let mut specs = 0;
    for element in header[6..].split(',') {
        let spec = element.trim_matches([' ', '\t']);
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if let Some(suffix) = spec.strip_prefix('-') {
            let n = digits(suffix)?;
            if n > 0 && size > 0 {
                out.push(size.saturating_sub(n)..size);
            }
            continue;
        }
        let (first, last) = spec.split_once('-')?;
        let first = digits(first)?;
        let end = if last.is_empty() {
            u64::MAX
        } else {
            let last = digits(last)?;
            if last < first {
                return None;
            }
            last.saturating_add(1)
        };
        if first < size {
            out.push(first..end.min(size));
        }
    }
    Some((out, specs))
}

fn coalesce(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<u64>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

fn check_range_set(ranges: &[Range<u64>], size: u64, max_ranges: usize, what: &str) {
    assert!(!ranges.is_empty(), "{what}: 206 with no range");
    assert!(
        ranges.len() <= max_ranges,
        "{what}: {} ranges > max_ranges {max_ranges}",
        ranges.len()
    );
    for r in ranges {
        assert!(
            r.start < r.end && r.end <= size,
            "{what}: range {r:?} empty or outside a file of {size} bytes"
        );
    }
    for w in ranges.windows(2) {
        assert!(
            w[0].end < w[1].start,
            "{what}: ranges not sorted/coalesced: {ranges:?}"
        );
    }
}

fn check_resolve_range(header: &str, size: u64, max_ranges: usize) -> RangeRequest {
    let resolved = resolve_range(header, size, max_ranges);
    let oracle = oracle_ranges(header, size);
    match &resolved {
        RangeRequest::Whole => {}
        RangeRequest::Unsatisfiable => {
            let (ranges, specs) = oracle.unwrap_or_else(|| {
                panic!("resolve_range: 416 for a header that is no range set: {header:?}")
            });
            assert!(
                ranges.is_empty(),
                "resolve_range: 416 though {ranges:?} overlap a file of {size} bytes: {header:?}"
            );
            assert!(specs <= max_ranges, "resolve_range: 416 past max_ranges");
        }
        RangeRequest::Ranges(ranges) => {
            check_range_set(ranges, size, max_ranges, "resolve_range");
            let (expected, specs) = oracle.unwrap_or_else(|| {
                panic!("resolve_range: ranges for a header that is no range set: {header:?}")
            });
            assert!(
                specs <= max_ranges,
                "resolve_range: {specs} specs served with max_ranges {max_ranges}"
            );
            assert_eq!(
                ranges,
                &coalesce(expected),
                "resolve_range: wrong bytes for {header:?} on {size} bytes"
            );
        }
    }
    resolved
}

/// An entity tag as RFC 9110 writes it, with only visible ASCII inside: (weak, opaque).
fn clean_etag(s: &str) -> Option<(bool, &str)> {
    let (weak, rest) = match s.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let opaque = rest.strip_prefix('"')?.strip_suffix('"')?;
    opaque
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b'"')
        .then_some((weak, opaque))
}

enum TagList<'a> {
    Any,
    Tags(Vec<(bool, &'a str)>),
}

/// `*` or a list of clean entity tags; `None` for anything else (the oracle then says nothing).
fn clean_tag_list(value: &str) -> Option<TagList<'_>> {
    if value.trim_matches([' ', '\t']) == "*" {
        return Some(TagList::Any);
    }
    let mut tags = Vec::new();
    for element in value.split(',') {
        let element = element.trim_matches([' ', '\t']);
        if element.is_empty() {
            continue;
        }
        tags.push(clean_etag(element)?);
    }
    (!tags.is_empty()).then_some(TagList::Tags(tags))
}

fn http_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn header_text<'a>(request: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    request.get(name).and_then(|v| v.to_str().ok())
}

fn date_secs(text: &str) -> Option<u64> {
    httpdate::parse_http_date(text).ok().map(http_secs)
}

/// The status RFC 9110 section 13.2.2 asks for, when the inputs are clean enough to say.
fn expected_precondition(
    request: &HeaderMap,
    file_tag: Option<(bool, &str)>,
    modified: u64,
) -> Option<Option<StatusCode>> {
    // A validator header that is not visible ASCII: `headers` may or may not take it.
    for name in [IF_MATCH, IF_NONE_MATCH, IF_MODIFIED_SINCE, IF_UNMODIFIED_SINCE] {
        if request.contains_key(&name) && header_text(request, &name).is_none() {
            return None;
        }
    }
    // 412 (If-Match, else If-Unmodified-Since).
    let failed = if let Some(value) = header_text(request, &IF_MATCH) {
        match clean_tag_list(value)? {
            // F5: `*` matches any existing file, whether or not its own ETag parses.
            TagList::Any => false,
            TagList::Tags(tags) => !tags.iter().any(|&(weak, opaque)| {
                !weak && file_tag.is_some_and(|(fw, fo)| !fw && fo == opaque)
            }),
        }
    } else if let Some(value) = header_text(request, &IF_UNMODIFIED_SINCE) {
        date_secs(value).is_some_and(|since| modified > since)
    } else {
        false
    };
    if failed {
        return Some(Some(StatusCode::PRECONDITION_FAILED));
    }
    // 304 (If-None-Match, else If-Modified-Since).
    let not_modified = if let Some(value) = header_text(request, &IF_NONE_MATCH) {
        match clean_tag_list(value)? {
            TagList::Any => true,
            TagList::Tags(tags) => tags
                .iter()
                .any(|&(_, opaque)| file_tag.is_some_and(|(_, fo)| fo == opaque)),
        }
    } else if let Some(value) = header_text(request, &IF_MODIFIED_SINCE) {
        date_secs(value).is_some_and(|since| modified <= since)
    } else {
        false
    };
    Some(not_modified.then_some(StatusCode::NOT_MODIFIED))
}

/// Whether If-Range lets the Range header through; `None` when the oracle cannot say.
fn expected_if_range(request: &HeaderMap, meta_etag: &str, modified: u64) -> Option<bool> {
    let Some(value) = request.get(IF_RANGE) else {
        return Some(true);
    };
    let Ok(text) = value.to_str() else {
        return Some(false);
    };
    let text = text.trim();
    if text.starts_with('"') || text.starts_with("W/") {
        let asked = clean_etag(text)?;
        let current = clean_etag(meta_etag)?;
        return Some(!asked.0 && !current.0 && asked.1 == current.1);
    }
    Some(date_secs(text) == Some(modified))
}

fn check_decision(input: &Input, request: &HeaderMap, meta: &FileMeta, config: &ServeConfig) {
    let method = &input.method;
    let decision = serve_decision(method, request, meta, config);
    let status = decision.status;
    let headers = &decision.headers;
    if debug() {
        eprintln!("{method} {request:?}\n  -> {status} {headers:?} {:?}", decision.body);
    }
    check_headers_clean(headers, "serve_decision");
    let size = meta.size;

    if method != Method::GET && method != Method::HEAD {
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} not refused");
        return;
    }
    let present = |name: &HeaderName| request.contains_key(name);
    let file_tag = clean_etag(&meta.etag);
    let modified = http_secs(meta.modified);
    assert!(headers.contains_key(LAST_MODIFIED), "no Last-Modified");
    if file_tag.is_some() {
        assert!(headers.contains_key(ETAG), "no ETag for a valid {:?}", meta.etag);
    }

    let body_empty = matches!(decision.body, BodyPlan::Empty);
    match status {
        StatusCode::PRECONDITION_FAILED => {
            assert!(
                present(&IF_MATCH) || present(&IF_UNMODIFIED_SINCE),
                "412 without If-Match / If-Unmodified-Since"
            );
            assert!(body_empty, "412 with a body");
        }
        StatusCode::NOT_MODIFIED => {
            assert!(
                present(&IF_NONE_MATCH) || present(&IF_MODIFIED_SINCE),
                "304 without If-None-Match / If-Modified-Since"
            );
            assert!(body_empty, "304 with a body");
        }
        StatusCode::OK => {
            assert_eq!(
                headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()),
                Some(size.to_string().as_str()),
                "200 with a wrong Content-Length"
            );
            let expected = if method == Method::HEAD {
                BodyPlan::Empty
            } else {
                BodyPlan::Whole
            };
            assert_eq!(decision.body, expected, "200 body plan");
        }
        StatusCode::PARTIAL_CONTENT => {
            assert!(method == Method::GET, "206 for {method}");
            assert!(present(&RANGE), "206 without Range");
            match &decision.body {
                BodyPlan::Single(r) => {
                    check_range_set(std::slice::from_ref(r), size, input.max_ranges, "206");
                    assert_eq!(
                        headers.get(CONTENT_RANGE).and_then(|v| v.to_str().ok()),
                        Some(format!("bytes {}-{}/{size}", r.start, r.end - 1).as_str()),
                        "Content-Range"
                    );
                    assert_eq!(
                        headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()),
                        Some((r.end - r.start).to_string().as_str()),
                        "206 Content-Length"
                    );
                }
                BodyPlan::Multi { boundary, parts } => {
                    assert!(parts.len() >= 2, "multipart 206 with one part");
                    check_range_set(parts, size, input.max_ranges, "206 multipart");
                    let ct = headers
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    assert_eq!(
                        ct,
                        format!("multipart/byteranges; boundary={boundary}"),
                        "multipart Content-Type"
                    );
                    let length: u64 = headers
                        .get(CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                        .unwrap_or_else(|| panic!("multipart 206 without Content-Length"));
                    let payload: u64 = parts.iter().map(|r| r.end - r.start).sum();
                    assert!(length > payload, "multipart Content-Length {length} too small");
                }
                other => panic!("206 with body plan {other:?}"),
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            assert!(method == Method::GET, "416 for {method}");
            assert!(present(&RANGE), "416 without Range");
            assert_eq!(
                headers.get(CONTENT_RANGE).and_then(|v| v.to_str().ok()),
                Some(format!("bytes */{size}").as_str()),
                "416 Content-Range"
            );
            assert!(body_empty, "416 with a body");
        }
        other => panic!("unexpected status {other}"),
    }

    // Exact status, when every input is clean enough for the oracles.
    let Some(precondition) = expected_precondition(request, file_tag, modified) else {
        return;
    };
    let expected = match precondition {
        Some(status) => status,
        None => {
            let range = header_text(request, &RANGE).filter(|_| method == Method::GET);
            match range {
                None => StatusCode::OK,
                Some(range) => match expected_if_range(request, &meta.etag, modified) {
                    None => return,
                    Some(false) => StatusCode::OK,
                    Some(true) => match resolve_range(range, size, input.max_ranges) {
                        RangeRequest::Whole => StatusCode::OK,
                        RangeRequest::Unsatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
                        RangeRequest::Ranges(ranges) => {
                            if let BodyPlan::Single(r) = &decision.body {
                                assert_eq!(std::slice::from_ref(r), ranges.as_slice());
                            }
                            if let BodyPlan::Multi { parts, .. } = &decision.body {
                                assert_eq!(parts, &ranges);
                            }
                            StatusCode::PARTIAL_CONTENT
                        }
                    },
                },
            }
        }
    };
    assert_eq!(
        status, expected,
        "status for {method} with {request:?} on etag {:?}, mtime {modified}",
        meta.etag
    );
}

/// `serve` for real on a small file: exactly Content-Length bytes, and the right ones.
fn check_serve(input: &Input, request: &HeaderMap, config: &ServeConfig) {
    let size = input.size;
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let storage = InMemoryStorage::new().with_default_visibility(Visibility::Public);
    let response = block_on(async {
        let saved = storage.save("served.bin", content.clone()).await;
        let saved = saved.unwrap_or_else(|e| panic!("save: {e}"));
        serve(
            &storage,
            saved.name.as_str(),
            None,
            &input.method,
            request,
            config,
        )
        .await
    });
    check_headers_clean(response.headers(), "serve");
    let status = response.status();
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let range = response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.into_body();
    let promised = body.len();
    let bytes = block_on(storage_core::collect_bytes(body.into_stream()))
        .unwrap_or_else(|e| panic!("serve body: {e}"));
    assert_eq!(bytes.len() as u64, promised, "serve: body length != ResponseBody::len");
    if let Some(declared) = declared {
        if input.method == Method::GET {
            assert_eq!(bytes.len() as u64, declared, "serve: body != Content-Length ({status})");
        } else {
            assert!(bytes.is_empty(), "serve: body for {}", input.method);
        }
    }
    match status {
        StatusCode::OK if input.method == Method::GET => {
            assert_eq!(bytes.as_ref(), content.as_slice(), "serve: 200 body");
        }
        StatusCode::PARTIAL_CONTENT => {
            if let Some(range) = range {
                let spec = range.strip_prefix("bytes ").unwrap_or_default();
                let (first_last, _) = spec.split_once('/').unwrap_or_default();
                let (first, last) = first_last.split_once('-').unwrap_or_default();
                let (first, last): (usize, usize) = (
                    first.parse().unwrap_or_else(|_| panic!("Content-Range {range}")),
                    last.parse().unwrap_or_else(|_| panic!("Content-Range {range}")),
                );
                assert_eq!(bytes.as_ref(), &content[first..=last], "serve: 206 bytes");
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = parse_input(data) else {
        return;
    };
    let name = input
        .name
        .as_deref()
        .and_then(|n| Name::new(n).ok())
        .unwrap_or_else(|| Name::new("docs/file.bin").expect("a valid name"));
    let sha = [7u8; 32];
    let mut meta = match &input.etag {
        Some(etag) => FileMeta::without_checksum(name, input.size, etag.clone(), input.modified),
        None => FileMeta::new(name, input.size, sha, input.modified),
    };
    meta = meta.with_content_type(input.content_type.clone());
    if input.private {
        meta = meta.with_visibility(Visibility::Private);
    }

    // Placeholders for the file's own validators (and a second either side), when HTTP can
    // write the time at all.
    let http_date = |t: Option<SystemTime>| {
        t.filter(|t| !outside_http_dates(*t))
            .map(httpdate::fmt_http_date)
            .unwrap_or_default()
    };
    let last_modified = http_date(Some(input.modified));
    let earlier = http_date(input.modified.checked_sub(Duration::from_secs(1)));
    let later = http_date(input.modified.checked_add(Duration::from_secs(1)));
    let mut request = HeaderMap::new();
    for (name, raw) in &input.headers {
        let mut value = replace_all(raw, b"$ETAG", meta.etag.as_bytes());
        value = replace_all(&value, b"$DATE", last_modified.as_bytes());
        value = replace_all(&value, b"$EARLIER", earlier.as_bytes());
        value = replace_all(&value, b"$LATER", later.as_bytes());
        // An HTTP parser strips the whitespace around a field value (RFC 9112 section 5).
        let value = value.trim_ascii();
        if let Ok(value) = HeaderValue::from_bytes(value) {
            // One value per header: the oracles read one, as `http` hands the first out.
            request.insert(name.clone(), value);
        }
    }
    let config = ServeConfig::new().max_ranges(input.max_ranges);

    if let Some(range) = header_text(&request, &RANGE) {
        check_resolve_range(range, input.size, input.max_ranges);
    }
    check_decision(&input, &request, &meta, &config);
    if input.size <= SERVE_LIMIT {
        check_serve(&input, &request, &config);
    }
});
