//! URLs for stored files, percent-encoded as Django's `filepath_to_uri` does.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but letters, digits and `-_.~/!*()'` is encoded, as JavaScript's
/// `encodeURIComponent` and Django's `filepath_to_uri` do (keeping `/`).
const PATH_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/')
    .remove(b'!')
    .remove(b'*')
    .remove(b'(')
    .remove(b')')
    .remove(b'\'');

/// Joins a base URL and a name as Django's `FileSystemStorage.url` does: backslashes become `/`,
/// special characters are percent-encoded (`:`, `?` and `#` included, so a name can never become
/// a scheme, a query or a fragment), and leading slashes are dropped so the result is never a
/// scheme-relative `//host` URL. A base URL without a trailing slash gets one.
///
/// ```
/// use storage_core::media_url;
/// assert_eq!(media_url("/media/", "a b.txt"), "/media/a%20b.txt");
/// assert_eq!(media_url("/media", "///evil.com"), "/media/evil.com");
/// ```
pub fn media_url(base_url: &str, name: &str) -> String {
    let encoded = utf8_percent_encode(&name.replace('\\', "/"), PATH_ESCAPES).to_string();
    let relative = encoded.trim_start_matches('/');
    let slash = if base_url.ends_with('/') { "" } else { "/" };
    format!("{base_url}{slash}{relative}")
}

/// A backend's `url()`: [`media_url`] under its configured base URL, or
/// [`Error::NotSupported`](crate::Error::NotSupported) when it has none (as Django raises when
/// `base_url` is unset).
pub fn url_under_base(
    backend: &'static str,
    base_url: Option<&str>,
    name: &crate::Name,
) -> crate::Result<String> {
    match base_url {
        Some(base) => Ok(media_url(base, name.as_str())),
        None => Err(crate::Error::NotSupported {
            backend,
            operation: "url() without a base URL".to_owned(),
        }),
    }
}

/// A backend's `url()` for a file with metadata `meta`: plain for a public file, signed with
/// `signer` for a private one (valid for `valid_for`, or the signer's default).
pub fn file_url(
    backend: &'static str,
    base_url: Option<&str>,
    signer: Option<&crate::UrlSigner>,
    meta: &crate::FileMeta,
    valid_for: Option<std::time::Duration>,
) -> crate::Result<String> {
    let url = url_under_base(backend, base_url, &meta.name)?;
    if meta.visibility == crate::Visibility::Public {
        return Ok(url);
    }
    let signer = signer.ok_or_else(|| crate::Error::NotSupported {
        backend,
        operation: "URLs for private files without a URL signer".to_owned(),
    })?;
    let query = signer.sign(
        &meta.name,
        valid_for.unwrap_or_else(|| signer.default_expiry()),
    );
    Ok(format!("{url}?{query}"))
}

/// Which URL `url()` gives a public file: django-binary-database-files'
/// `DATABASE_FILES_URL_METHOD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UrlStyle {
    /// The app's serving route (`URL_METHOD_2`): the storage's base URL plus the name, answered
    /// by the app through `storage-http` (the default).
    #[default]
    Route,
    /// A media URL (`URL_METHOD_1`, Django's `MEDIA_URL`) plus the name, where nginx or a CDN
    /// serves the disk mirror ([`MirroredStorage`](crate::MirroredStorage)). Private files are
    /// never mirrored, so their URLs stay on the route, signed.
    MediaUrl(String),
}

/// How a storage turns a name into a URL: the route (base URL), the style, an optional absolute
/// base (django-binary-database-files' `DATABASE_FILES_BASE_URL`, such as
/// `https://files.example.com`) put before relative URLs, and the signer for private files.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UrlPolicy {
    /// The serving route, such as `/media/`; `None` makes `url()` unsupported.
    pub base_url: Option<String>,
    /// Route or media URL for public files.
    pub style: UrlStyle,
    /// Put before every relative URL.
    pub absolute_base: Option<String>,
    /// Signs the URLs of private files.
    pub signer: Option<crate::UrlSigner>,
}

impl UrlPolicy {
    /// A policy with a route and no signer.
    pub fn new(base_url: Option<&str>) -> Self {
        Self {
            base_url: base_url.map(str::to_owned),
            ..Self::default()
        }
    }

    /// The URL of a file with metadata `meta`.
    ///
    /// ```
    /// use storage_core::{FileMeta, Name, UrlPolicy, UrlStyle};
    /// let meta = FileMeta::new(Name::new("a b.png")?, 1, [0; 32], std::time::SystemTime::now());
    /// let mut policy = UrlPolicy::new(Some("/files/"));
    /// assert_eq!(policy.url("db", &meta, None)?, "/files/a%20b.png");
    /// policy.style = UrlStyle::MediaUrl("/media/".into());
    /// policy.absolute_base = Some("https://cdn.example.com/".into());
    /// assert_eq!(policy.url("db", &meta, None)?, "https://cdn.example.com/media/a%20b.png");
    /// # Ok::<(), storage_core::Error>(())
    /// ```
    pub fn url(
        &self,
        backend: &'static str,
        meta: &crate::FileMeta,
        valid_for: Option<std::time::Duration>,
    ) -> crate::Result<String> {
        let relative = match (&self.style, meta.visibility) {
            (UrlStyle::MediaUrl(media), crate::Visibility::Public) => {
                media_url(media, meta.name.as_str())
            }
            _ => file_url(
                backend,
                self.base_url.as_deref(),
                self.signer.as_ref(),
                meta,
                valid_for,
            )?,
        };
        Ok(match &self.absolute_base {
            Some(base) if relative.starts_with('/') => {
                format!("{}{relative}", base.trim_end_matches('/'))
            }
            _ => relative,
        })
    }
}

/// A storage URL fit to print or log: a password is shown as `***`
/// (`postgres://app:***@db/app`). A URL that cannot be parsed but holds an `@` is withheld
/// whole, since where its password ends cannot be told. Every crate that prints a storage URL
/// (messages, `dbfiles serve`, the examples) goes through this.
///
/// ```
/// use storage_core::redact_url;
/// assert_eq!(redact_url("postgres://app:s3cret@db/app"), "postgres://app:***@db/app");
/// assert_eq!(redact_url("sqlite://media.db"), "sqlite://media.db");
/// ```
pub fn redact_url(url: &str) -> String {
    match ::url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) if url.contains('@') => "(a storage URL that could not be parsed)".to_owned(),
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_django_test_file_url() {
        let base = "/test_media_url/";
        assert_eq!(media_url(base, "test.file"), "/test_media_url/test.file");
        assert_eq!(
            media_url(base, r"~!*()'@#$%^&*abc`+ =.file"),
            "/test_media_url/~!*()'%40%23%24%25%5E%26*abc%60%2B%20%3D.file"
        );
        assert_eq!(media_url(base, "ab\0c"), "/test_media_url/ab%00c");
        assert_eq!(media_url(base, r"a/b\c.file"), "/test_media_url/a/b/c.file");
        for evil in ["/evil.com", r"\evil.com", "///evil.com", r"\\\evil.com"] {
            assert_eq!(media_url(base, evil), "/test_media_url/evil.com", "{evil}");
        }
        assert_eq!(media_url(base, ""), "/test_media_url/");
        assert_eq!(
            media_url("/no_ending_slash", "test.file"),
            "/no_ending_slash/test.file"
        );
        assert_eq!(
            media_url(base, "javascript:x?y#z"),
            "/test_media_url/javascript%3Ax%3Fy%23z"
        );
        assert_eq!(media_url(base, "é.txt"), "/test_media_url/%C3%A9.txt");
    }

    #[test]
    fn printed_urls_hide_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/app?sslmode=require"),
            "postgres://app:***@db.internal:5432/app?sslmode=require"
        );
        assert_eq!(redact_url("sqlite://media.db"), "sqlite://media.db");
        assert_eq!(redact_url("memory:"), "memory:");
        assert!(!redact_url("ftp://u:pw@[bad/dir").contains("pw"));
    }
}
