//! Response headers that keep served files safe: type, disposition, caching.

use http::HeaderValue;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use storage_core::{guess_content_type, FileMeta};

/// RFC 8187 `attr-char`: what may stay unencoded in `filename*`.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Media types shown inline by default: raster images, audio, video, PDF and plain text. HTML,
/// SVG, XML, JavaScript and anything unknown are downloaded instead, so a stored file can never
/// run script in the site's origin.
pub const DEFAULT_INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
    "audio/*",
    "video/*",
    "application/pdf",
    "text/plain",
];

/// The type a file is served with: the stored one, else guessed from the name, else
/// `application/octet-stream`.
pub fn content_type_of(meta: &FileMeta) -> HeaderValue {
    meta.content_type
        .clone()
        .or_else(|| guess_content_type(meta.name.as_str()))
        .and_then(|t| HeaderValue::from_str(&t).ok())
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"))
}

/// The part of a media type before parameters, lower-cased: `text/plain; charset=utf-8` is
/// `text/plain`.
pub(crate) fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// True when `content_type` matches one of `patterns` (`type/subtype` or `type/*`).
pub fn type_matches(content_type: &str, patterns: &[String]) -> bool {
    let essence = essence(content_type);
    patterns.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_suffix("/*") {
            Some(family) => essence.split('/').next() == Some(family),
            None => essence == pattern,
        }
    })
}

/// `Content-Disposition`: `inline` for the allow-listed types, `attachment` otherwise, with an
/// ASCII `filename` (anything else becomes `_`) and an RFC 8187 `filename*` when the name is not
/// plain ASCII.
pub fn content_disposition(
    file_name: &str,
    content_type: &str,
    inline_types: &[String],
) -> HeaderValue {
    let kind = if type_matches(content_type, inline_types) {
        "inline"
    } else {
        "attachment"
    };
    let ascii: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut value = format!("{kind}; filename=\"{ascii}\"");
    if ascii != file_name {
        value.push_str("; filename*=UTF-8''");
        value.extend(utf8_percent_encode(file_name, ATTR_CHAR_ESCAPES));
    }
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline() -> Vec<String> {
        DEFAULT_INLINE_TYPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    fn disposition(name: &str, content_type: &str) -> String {
        content_disposition(name, content_type, &inline())
            .to_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn only_safe_types_are_inline() {
        assert_eq!(
            disposition("a.png", "image/png"),
            "inline; filename=\"a.png\""
        );
        assert_eq!(
            disposition("a.mp4", "video/mp4"),
            "inline; filename=\"a.mp4\""
        );
        assert_eq!(
            disposition("a.txt", "text/plain; charset=utf-8"),
            "inline; filename=\"a.txt\""
        );
        for (name, t) in [
            ("a.html", "text/html"),
            ("a.svg", "image/svg+xml"),
            ("a.xml", "application/xml"),
            ("a.js", "text/javascript"),
            ("a.bin", "application/octet-stream"),
            ("x", ""),
        ] {
            assert!(disposition(name, t).starts_with("attachment;"), "{name}");
        }
    }

    #[test]
    fn names_are_quoted_safely() {
        assert_eq!(
            disposition("résumé \"final\".pdf", "application/pdf"),
            "inline; filename=\"r_sum_ _final_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"
        );
        assert_eq!(
            disposition("日本.txt", "text/plain"),
            "inline; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
        );
        assert_eq!(
            disposition("a\\b;c.txt", "text/plain"),
            "inline; filename=\"a_b;c.txt\"; filename*=UTF-8''a%5Cb%3Bc.txt"
        );
    }

    #[test]
    fn type_patterns() {
        let patterns = vec!["image/*".to_owned(), "application/pdf".to_owned()];
        assert!(type_matches("image/PNG", &patterns));
        assert!(type_matches("application/pdf; x=y", &patterns));
        assert!(!type_matches("text/html", &patterns));
        assert!(!type_matches("imagex/png", &patterns));
    }
}
