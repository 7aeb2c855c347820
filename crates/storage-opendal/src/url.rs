//! Storage URLs for remote services: one string picks the service, the place and the options.
// Each helper serves some of the services; built with only some, the others' go unused.
#![cfg_attr(
    not(all(
        feature = "s3",
        feature = "sftp",
        feature = "ftp",
        feature = "webdav",
        feature = "azblob",
        feature = "gcs"
    )),
    allow(dead_code)
)]

use std::collections::BTreeMap;
use std::time::Duration;

use storage_core::{Error, Result, Visibility};

use crate::storage::OpendalStorage;

/// The URL schemes [`connect_url`] opens (with their cargo features).
pub const SCHEMES: &[&str] = &["s3", "sftp", "ftp", "webdav", "webdavs", "azblob", "gcs"];

/// True when `url` names a service of this crate (built in or not).
pub fn is_remote_url(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| SCHEMES.contains(&scheme))
}

/// Options every remote URL may carry.
const COMMON: &[&str] = &["public_url", "visibility", "expiry"];

fn bad(url: &Redacted<'_>, reason: impl std::fmt::Display) -> Error {
    Error::BadRequest {
        reason: format!("storage URL '{url}': {reason}"),
    }
}

/// A URL for messages: any password is replaced by `***`.
struct Redacted<'a>(&'a url::Url);

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&storage_core::redact_url(self.0.as_str()))
    }
}

/// The parts of a storage URL.
struct Parsed<'a> {
    url: &'a url::Url,
    params: BTreeMap<String, String>,
}

impl<'a> Parsed<'a> {
    fn new(url: &'a url::Url, allowed: &[&str]) -> Result<Self> {
        let mut params = BTreeMap::new();
        for (key, value) in url.query_pairs() {
            if !allowed.contains(&key.as_ref()) && !COMMON.contains(&key.as_ref()) {
                return Err(bad(
                    &Redacted(url),
                    format!(
                        "unknown parameter '{key}' (known: {})",
                        [allowed, COMMON].concat().join(", ")
                    ),
                ));
            }
            params.insert(key.into_owned(), value.into_owned());
        }
        Ok(Self { url, params })
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> Result<bool> {
        match self.param(key) {
            None | Some("false" | "0" | "no") => Ok(false),
            Some("true" | "1" | "yes" | "") => Ok(true),
            Some(other) => Err(bad(
                &Redacted(self.url),
                format!("'{key}' must be true or false, not '{other}'"),
            )),
        }
    }

    /// The host (the bucket or container for object stores), required.
    fn host(&self, what: &str) -> Result<String> {
        match self.url.host_str() {
            Some(host) if !host.is_empty() => Ok(host.to_owned()),
            _ => Err(bad(&Redacted(self.url), format!("{what} is missing"))),
        }
    }

    /// The path after the host, without slashes at either end, percent-decoded.
    fn path(&self) -> String {
        let path = percent_encoding::percent_decode_str(self.url.path()).decode_utf8_lossy();
        path.trim_matches('/').to_owned()
    }

    fn user(&self) -> Option<String> {
        let user = percent_encoding::percent_decode_str(self.url.username()).decode_utf8_lossy();
        (!user.is_empty()).then(|| user.into_owned())
    }

    fn password(&self) -> Option<String> {
        self.url.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        })
    }

    fn host_port(&self, default_port: u16) -> Result<String> {
        let host = self.host("the host")?;
        Ok(format!(
            "{host}:{}",
            self.url.port().unwrap_or(default_port)
        ))
    }

    /// Applies the options every service shares.
    fn finish(
        &self,
        storage: OpendalStorage,
        public_url: Option<String>,
    ) -> Result<OpendalStorage> {
        let public_url = self.param("public_url").map(str::to_owned).or(public_url);
        let mut storage = storage.with_public_base_url(public_url.as_deref());
        match self.param("visibility") {
            None => {}
            Some("public") => storage = storage.with_default_visibility(Visibility::Public),
            Some("private") => storage = storage.with_default_visibility(Visibility::Private),
            Some(other) => {
                return Err(bad(
                    &Redacted(self.url),
                    format!("visibility must be public or private, not '{other}'"),
                ))
            }
        }
        if let Some(expiry) = self.param("expiry") {
            let seconds: u64 = expiry.parse().map_err(|_| {
                bad(
                    &Redacted(self.url),
                    format!("expiry must be a number of seconds, not '{expiry}'"),
                )
            })?;
            storage = storage.with_presign_expiry(Duration::from_secs(seconds));
        }
        Ok(storage)
    }
}

/// `prefix/` under a base URL, or the base alone.
fn under(base: &str, prefix: &str) -> String {
    let base = base.trim_end_matches('/');
    if prefix.is_empty() {
        format!("{base}/")
    } else {
        let prefix = storage_core::media_url("", prefix);
        format!("{base}/{}/", prefix.trim_matches('/'))
    }
}

fn build<B: opendal::Builder>(
    url: &url::Url,
    config: impl IntoIterator<Item = (&'static str, String)>,
) -> Result<opendal::Operator> {
    let config = config.into_iter().map(|(k, v)| (k.to_owned(), v));
    opendal::Operator::from_iter::<B>(config)
        .map(|op| op.layer(opendal::layers::RetryLayer::new()))
        .map_err(|e| bad(&Redacted(url), format!("cannot configure the service: {e}")))
}

fn not_built(scheme: &str) -> Error {
    Error::NotSupported {
        backend: "opendal",
        operation: format!(
            "'{scheme}://' storage URLs need the '{}' cargo feature",
            if scheme == "webdavs" {
                "webdav"
            } else {
                scheme
            }
        ),
    }
}

/// Opens the remote storage a URL names:
///
/// - `s3://BUCKET/PREFIX?endpoint=URL&region=R` (AWS, MinIO, Ceph, R2, Garage, ...; credentials
///   from the usual AWS environment variables and files; `virtual_host=true` for
///   virtual-hosted-style requests, `anonymous=true` for public buckets without credentials);
/// - `sftp://USER@HOST:PORT/DIR?key=PATH&known_hosts=strict|accept|add` (the `ssh` command's
///   host checks; strict by default);
/// - `ftp://USER:PASSWORD@HOST:PORT/DIR`;
/// - `webdav://USER:PASSWORD@HOST:PORT/PATH` (HTTP) or `webdavs://...` (HTTPS);
/// - `azblob://CONTAINER/PREFIX?endpoint=URL&account_name=NAME` (the key from
///   `AZURE_STORAGE_ACCOUNT_KEY`, or a SAS token from `AZURE_STORAGE_SAS_TOKEN`);
/// - `gcs://BUCKET/PREFIX?endpoint=URL&credential_path=PATH` (or
///   `GOOGLE_APPLICATION_CREDENTIALS`).
///
/// Every URL may add `public_url=URL` (where public files are fetched, such as a CDN domain;
/// django-storages' `custom_domain`), `visibility=public|private` (the default for new files,
/// where private files are supported) and `expiry=SECONDS` (presigned URLs). An unknown
/// parameter is an error, so a typo never silently changes the configuration. A scheme whose
/// cargo feature was not built is [`Error::NotSupported`].
pub async fn connect_url(url: &str) -> Result<OpendalStorage> {
    let parsed = url::Url::parse(url).map_err(|e| Error::BadRequest {
        reason: format!("not a storage URL: {e}"),
    })?;
    match parsed.scheme() {
        #[cfg(feature = "s3")]
        "s3" => s3(&parsed),
        #[cfg(feature = "sftp")]
        "sftp" => sftp(&parsed),
        #[cfg(feature = "ftp")]
        "ftp" => ftp(&parsed),
        #[cfg(feature = "webdav")]
        "webdav" | "webdavs" => webdav(&parsed),
        #[cfg(feature = "azblob")]
        "azblob" => azblob(&parsed),
        #[cfg(feature = "gcs")]
        "gcs" => gcs(&parsed),
        #[allow(unreachable_patterns)]
        known if SCHEMES.contains(&known) => Err(not_built(known)),
        other => Err(Error::NotSupported {
            backend: "opendal",
            operation: format!("'{other}://' storage URLs (known: {})", SCHEMES.join(", ")),
        }),
    }
}

#[cfg(feature = "s3")]
fn s3(url: &url::Url) -> Result<OpendalStorage> {
    let p = Parsed::new(url, &["endpoint", "region", "virtual_host", "anonymous"])?;
    let bucket = p.host("the bucket")?;
    let prefix = p.path();
    let virtual_host = p.flag("virtual_host")?;
    let mut config = vec![("bucket", bucket.clone()), ("root", format!("/{prefix}"))];
    let region = p
        .param("region")
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".to_owned());
    config.push(("region", region.clone()));
    if let Some(endpoint) = p.param("endpoint") {
        config.push(("endpoint", endpoint.to_owned()));
    }
    if virtual_host {
        config.push(("enable_virtual_host_style", "true".to_owned()));
    }
    if p.flag("anonymous")? {
        config.push(("allow_anonymous", "true".to_owned()));
    }
    let op = build::<opendal::services::S3>(url, config)?;
    let public = match p.param("endpoint") {
        Some(endpoint) if virtual_host => {
            let endpoint = url::Url::parse(endpoint).map_err(|e| bad(&Redacted(url), e))?;
            format!(
                "{}://{bucket}.{}",
                endpoint.scheme(),
                endpoint.host_str().unwrap_or_default()
            ) + &endpoint
                .port()
                .map(|port| format!(":{port}"))
                .unwrap_or_default()
        }
        Some(endpoint) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
    };
    p.finish(OpendalStorage::new(op)?, Some(under(&public, &prefix)))
}

#[cfg(feature = "sftp")]
fn sftp(url: &url::Url) -> Result<OpendalStorage> {
    let p = Parsed::new(url, &["key", "known_hosts"])?;
    let mut config = vec![
        ("endpoint", format!("ssh://{}", p.host_port(22)?)),
        ("root", format!("/{}", p.path())),
        (
            "known_hosts_strategy",
            p.param("known_hosts").unwrap_or("strict").to_owned(),
        ),
    ];
    if let Some(user) = p.user() {
        config.push(("user", user));
    }
    if let Some(key) = p.param("key") {
        config.push(("key", key.to_owned()));
    }
    if p.password().is_some() {
        return Err(bad(
            &Redacted(url),
            "SFTP logs in with a key (key=PATH or the ssh agent), not a password",
        ));
    }
    let op = build::<opendal::services::Sftp>(url, config)?;
    p.finish(OpendalStorage::new(op)?, None)
}

#[cfg(feature = "ftp")]
fn ftp(url: &url::Url) -> Result<OpendalStorage> {
    let p = Parsed::new(url, &[])?;
    let address = p.host_port(21)?;
    let root = format!("/{}", p.path());
    let (user, password) = (
        p.user().unwrap_or_default(),
        p.password().unwrap_or_default(),
    );
    let mut config = vec![
        ("endpoint", format!("ftp://{address}")),
        ("root", root.clone()),
    ];
    if !user.is_empty() {
        config.push(("user", user.clone()));
        config.push(("password", password.clone()));
    }
    let op = build::<opendal::services::Ftp>(url, config)?;
    let login = crate::ftp::FtpLogin::new(address, user, password, root);
    p.finish(OpendalStorage::ftp(op, login), None)
}

#[cfg(feature = "webdav")]
fn webdav(url: &url::Url) -> Result<OpendalStorage> {
    let p = Parsed::new(url, &[])?;
    let scheme = if url.scheme() == "webdavs" {
        "https"
    } else {
        "http"
    };
    let endpoint = format!(
        "{scheme}://{}",
        p.host_port(if scheme == "https" { 443 } else { 80 })?
    );
    let prefix = p.path();
    let mut config = vec![
        ("endpoint", endpoint.clone()),
        ("root", format!("/{prefix}")),
    ];
    if let Some(user) = p.user() {
        config.push(("username", user));
        config.push(("password", p.password().unwrap_or_default()));
    }
    let op = build::<opendal::services::Webdav>(url, config)?;
    p.finish(OpendalStorage::new(op)?, Some(under(&endpoint, &prefix)))
}

#[cfg(feature = "azblob")]
fn azblob(url: &url::Url) -> Result<OpendalStorage> {
    let p = Parsed::new(url, &["endpoint", "account_name"])?;
    let container = p.host("the container")?;
    let prefix = p.path();
    let account = p
        .param("account_name")
        .map(str::to_owned)
        .or_else(|| std::env::var("AZURE_STORAGE_ACCOUNT_NAME").ok());
    let endpoint = match (p.param("endpoint"), &account) {
        (Some(endpoint), _) => endpoint.trim_end_matches('/').to_owned(),
        (None, Some(account)) => format!("https://{account}.blob.core.windows.net"),
        (None, None) => {
            return Err(bad(
                &Redacted(url),
                "give endpoint=URL or account_name=NAME (or AZURE_STORAGE_ACCOUNT_NAME)",
            ))
        }
    };
    let mut config = vec![
        ("container", container.clone()),
        ("root", format!("/{prefix}")),
        ("endpoint", endpoint.clone()),
    ];
    if let Some(account) = account {
        config.push(("account_name", account));
    }
    if let Ok(key) = std::env::var("AZURE_STORAGE_ACCOUNT_KEY") {
        config.push(("account_key", key));
    }
    if let Ok(sas) = std::env::var("AZURE_STORAGE_SAS_TOKEN") {
        config.push(("sas_token", sas));
    }
    let op = build::<opendal::services::Azblob>(url, config)?;
    let public = format!("{endpoint}/{container}");
    p.finish(OpendalStorage::new(op)?, Some(under(&public, &prefix)))
}

#[cfg(feature = "gcs")]
fn gcs(url: &url::Url) -> Result<OpendalStorage> {
    let p = Parsed::new(url, &["endpoint", "credential_path", "anonymous"])?;
    let bucket = p.host("the bucket")?;
    let prefix = p.path();
    let mut config = vec![("bucket", bucket.clone()), ("root", format!("/{prefix}"))];
    if let Some(endpoint) = p.param("endpoint") {
        config.push(("endpoint", endpoint.to_owned()));
    }
    if let Some(path) = p.param("credential_path") {
        config.push(("credential_path", path.to_owned()));
    }
    if p.flag("anonymous")? {
        config.push(("allow_anonymous", "true".to_owned()));
    }
    let op = build::<opendal::services::Gcs>(url, config)?;
    let public = match p.param("endpoint") {
        Some(endpoint) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        None => format!("https://storage.googleapis.com/{bucket}"),
    };
    p.finish(OpendalStorage::new(op)?, Some(under(&public, &prefix)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_are_recognised() {
        assert!(is_remote_url("s3://bucket/prefix"));
        assert!(is_remote_url("webdavs://host/dav"));
        assert!(!is_remote_url("sqlite://media.db"));
        assert!(!is_remote_url("postgres://u@h/db"));
        assert!(!is_remote_url("memory:"));
    }

    #[test]
    fn public_urls_join_base_and_prefix() {
        assert_eq!(under("http://h:9000/b", ""), "http://h:9000/b/");
        assert_eq!(
            under("http://h:9000/b/", "a b/c"),
            "http://h:9000/b/a%20b/c/"
        );
    }

    #[test]
    fn passwords_never_reach_messages() -> Result<()> {
        let url = url::Url::parse("ftp://me:s3cret@127.0.0.1:2121/x?bogus=1")
            .map_err(|e| Error::backend("test", "parse", e))?;
        let shown = Redacted(&url).to_string();
        assert!(
            !shown.contains("s3cret") && shown.contains("***"),
            "{shown}"
        );
        let Err(e) = Parsed::new(&url, &[]) else {
            return Err(Error::backend(
                "test",
                "bogus parameter accepted",
                std::io::Error::other("x"),
            ));
        };
        let message = e.to_string();
        assert!(message.contains("unknown parameter 'bogus'"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        Ok(())
    }

    #[tokio::test]
    async fn bad_urls_are_clear_errors() {
        let (s3, sftp) = (cfg!(feature = "s3"), cfg!(feature = "sftp"));
        for (url, built, expected) in [
            ("s4://bucket", true, "'s4://' storage URLs"),
            ("s3:///prefix", s3, "the bucket is missing"),
            ("s3://b/p?region=x&typo=1", s3, "unknown parameter 'typo'"),
            (
                "s3://b/p?visibility=secret",
                s3,
                "visibility must be public or private",
            ),
            (
                "s3://b/p?expiry=soon",
                s3,
                "expiry must be a number of seconds",
            ),
            ("sftp://u:pw@host/dir", sftp, "not a password"),
        ] {
            let result = connect_url(url).await;
            let message = result.err().map(|e| e.to_string()).unwrap_or_default();
            // A URL for a service not built in says which feature it needs instead.
            let expected = if built { expected } else { "cargo feature" };
            assert!(message.contains(expected), "{url}: {message}");
        }
    }
}
