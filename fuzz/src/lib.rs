//! Invariant checks shared by the fuzz targets in `fuzz_targets/`.
//!
//! Every check panics with a message naming the broken invariant, so libFuzzer reports it as a
//! crash and keeps the input.

use std::future::Future;
use std::sync::OnceLock;

use http::HeaderMap;
use storage_core::{Name, MAX_NAME_BYTES};

/// `FUZZ_DEBUG=1` makes the targets print what each input did (for replaying one input).
pub fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("FUZZ_DEBUG").is_some_and(|v| !v.is_empty() && v != "0"))
}

/// Runs a future to completion on one current-thread runtime per fuzzing thread.
pub fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time() // upload pacing (idle timeout, minimum rate) uses tokio timers
            .build()
            .expect("a current-thread runtime");
    }
    RUNTIME.with(|rt| rt.block_on(future))
}

/// `C:` at the start: a Windows drive, which `Name` documents as refused.
pub fn has_drive_prefix(s: &str) -> bool {
    let mut chars = s.chars();
    matches!((chars.next(), chars.next()), (Some(l), Some(':')) if l.is_ascii_alphabetic())
}

/// True for a pre-1970 or post-9999 time, which `httpdate` cannot format (finding F1).
pub fn outside_http_dates(time: std::time::SystemTime) -> bool {
    match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() >= 253_402_300_800,
        Err(_) => true,
    }
}

/// What every accepted storage name must be: relative, no empty, `.` or `..` part, no NUL or
/// control character, no backslash, at most `MAX_NAME_BYTES`, and a fixed point of `Name::new`.
pub fn check_name(name: &Name, what: &str) {
    let s = name.as_str();
    assert!(!s.is_empty(), "{what}: empty name accepted");
    assert!(
        s.len() <= MAX_NAME_BYTES,
        "{what}: {} bytes > MAX_NAME_BYTES: {s:?}",
        s.len()
    );
    assert!(!s.starts_with('/'), "{what}: absolute name {s:?}");
    assert!(!s.contains('\\'), "{what}: backslash in {s:?}");
    assert!(
        !s.chars().any(|c| c == '\0' || c.is_control()),
        "{what}: NUL/control character in {s:?}"
    );
    for part in s.split('/') {
        assert!(
            !part.is_empty() && part != "." && part != "..",
            "{what}: part {part:?} in {s:?}"
        );
    }
    // F2: on Windows, `Path::join` of a `C:` part throws away the storage root.
    assert!(
        !s.split('/').any(has_drive_prefix),
        "{what}: a part of {s:?} is a drive (F2)"
    );
    match Name::new(s) {
        Ok(again) => assert_eq!(&again, name, "{what}: Name::new not idempotent on {s:?}"),
        Err(e) => panic!("{what}: Name::new refuses its own output {s:?}: {e}"),
    }
}

/// No response header may carry CR, LF or NUL (header injection / response splitting).
pub fn check_headers_clean(headers: &HeaderMap, what: &str) {
    for (name, value) in headers {
        let bytes = value.as_bytes();
        assert!(
            !bytes.iter().any(|b| matches!(b, b'\r' | b'\n' | b'\0')),
            "{what}: header {name} carries CR/LF/NUL: {value:?}"
        );
    }
}

/// Splits fuzz bytes on 0xFF (never part of UTF-8) into lossy strings.
pub fn split_fields(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0xFF)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}
