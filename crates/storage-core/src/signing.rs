//! Signed, expiring URLs for private files: HMAC-SHA256 over the storage name and the expiry,
//! checked in constant time, with older secrets still accepted while secrets rotate.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::name::Name;

type HmacSha256 = Hmac<Sha256>;

/// Why a signed request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No `expires` and `signature` in the query.
    Missing,
    /// The expiry has passed.
    Expired,
    /// The signature does not match (tampered name or expiry, unknown or retired secret).
    Invalid,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "signature missing",
            Self::Expired => "signature expired",
            Self::Invalid => "signature invalid",
        })
    }
}

impl std::error::Error for SignatureError {}

/// Signs and checks URLs for private files (the model is django-storages' querystring auth and S3
/// presigned URLs): `?expires=UNIX_SECONDS&signature=BASE64URL(HMAC-SHA256(secret, name, expires))`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use storage_core::{Name, UrlSigner};
///
/// let signer = UrlSigner::new("current secret").with_previous_secrets(["last month's secret"]);
/// let name = Name::new("invoices/42.pdf")?;
/// let query = signer.sign(&name, Duration::from_secs(600));
/// assert!(signer.verify(&name, Some(&query), SystemTime::now()).is_ok());
/// assert!(signer.verify(&Name::new("invoices/43.pdf")?, Some(&query), SystemTime::now()).is_err());
/// # Ok::<(), storage_core::Error>(())
/// ```
#[derive(Clone)]
pub struct UrlSigner {
    secrets: Vec<Vec<u8>>,
    default_expiry: Duration,
    expiry_window: u64,
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlSigner")
            .field("secrets", &self.secrets.len())
            .field("default_expiry", &self.default_expiry)
            .field("expiry_window", &self.expiry_window)
            .finish()
    }
}

impl UrlSigner {
    /// Signs with `secret`; URLs last an hour unless asked otherwise.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self {
            secrets: vec![secret.as_ref().to_vec()],
            default_expiry: Duration::from_secs(3600),
            expiry_window: 0,
        }
    }

    /// Secrets no longer used for signing but still accepted, so URLs handed out before a
    /// rotation keep working until they expire. Drop a secret from this list to revoke them.
    #[must_use]
    pub fn with_previous_secrets<I, S>(mut self, secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.secrets
            .extend(secrets.into_iter().map(|s| s.as_ref().to_vec()));
        self
    }

    /// How long URLs last when no expiry is given.
    #[must_use]
    pub fn with_default_expiry(mut self, expiry: Duration) -> Self {
        self.default_expiry = expiry;
        self
    }

    /// Rounds every expiry up to the next multiple of `window` (whole seconds, counted from the
    /// Unix epoch so every app server agrees), so a file's URL stays the same for that long and
    /// a browser or CDN caches it instead of fetching a new URL on every page view. A URL then
    /// lasts at least the asked time and at most `window` more. Zero (the default) turns it off.
    ///
    /// ```
    /// use std::time::Duration;
    /// use storage_core::{Name, UrlSigner};
    ///
    /// let signer = UrlSigner::new("secret").with_expiry_window(Duration::from_secs(3600));
    /// let name = Name::new("avatars/42.png")?;
    /// let first = signer.sign(&name, Duration::from_secs(600));
    /// let again = signer.sign(&name, Duration::from_secs(600));
    /// # // The two calls may straddle a window boundary: once in a long while, not twice in a row.
    /// # let again = if first == again { again } else { signer.sign(&name, Duration::from_secs(600)) };
    /// assert_eq!(first, again);
    /// # Ok::<(), storage_core::Error>(())
    /// ```
    #[must_use]
    pub fn with_expiry_window(mut self, window: Duration) -> Self {
        // Whole seconds, as expiries are; a window under one is one, not none.
        self.expiry_window = if window.is_zero() {
            0
        } else {
            window.as_secs().max(1)
        };
        self
    }

    /// The [expiry window](Self::with_expiry_window); zero when there is none.
    pub fn expiry_window(&self) -> Duration {
        Duration::from_secs(self.expiry_window)
    }

    /// The expiry a URL signed at `now` for `valid_for` gets, in seconds since the Unix epoch:
    /// rounded up to the [expiry window](Self::with_expiry_window) when there is one.
    pub fn expiry_for(&self, now: SystemTime, valid_for: Duration) -> u64 {
        let expires = now
            .checked_add(valid_for)
            .unwrap_or(now)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match self.expiry_window {
            0 => expires,
            window => expires
                .div_ceil(window)
                .checked_mul(window)
                .unwrap_or(expires),
        }
    }

    /// How long URLs last when no expiry is given.
    pub fn default_expiry(&self) -> Duration {
        self.default_expiry
    }

    fn mac(secret: &[u8], name: &Name, expires: u64) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        mac.update(b"dbfiles-url-v1\n");
        mac.update(name.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The query string (`expires=...&signature=...`) that lets `name` be fetched for `valid_for`.
    pub fn sign(&self, name: &Name, valid_for: Duration) -> String {
        self.sign_until(name, self.expiry_for(SystemTime::now(), valid_for))
    }

    /// The query string for a fixed expiry, in seconds since the Unix epoch.
    pub fn sign_until(&self, name: &Name, expires: u64) -> String {
        let secret = self.secrets.first().map_or(&[][..], Vec::as_slice);
        let signature =
            URL_SAFE_NO_PAD.encode(Self::mac(secret, name, expires).finalize().into_bytes());
        format!("expires={expires}&signature={signature}")
    }

    /// Checks the query string of a request for `name` at time `now`. A query that spells the
    /// signature more than one way is [`SignatureError::Invalid`]: `expires` or `signature`
    /// given twice, or an expiry that is not plain decimal digits (`+17...`, `017...`), since a
    /// proxy, cache or log in front may read another value or compare the text.
    pub fn verify(
        &self,
        name: &Name,
        query: Option<&str>,
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        self.verified_expiry(name, query, now).map(drop)
    }

    /// [`verify`](Self::verify), giving the expiry the signature carries (seconds since the
    /// Unix epoch): how long an answer to this URL may be kept.
    pub fn verified_expiry(
        &self,
        name: &Name,
        query: Option<&str>,
        now: SystemTime,
    ) -> Result<u64, SignatureError> {
        let (mut expires, mut signature) = (None, None);
        for pair in query.unwrap_or_default().split('&') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let slot = match key {
                "expires" => &mut expires,
                "signature" => &mut signature,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(SignatureError::Invalid);
            }
        }
        let (Some(expires), Some(signature)) = (expires, signature) else {
            return Err(SignatureError::Missing);
        };
        let canonical = !expires.is_empty()
            && expires.bytes().all(|b| b.is_ascii_digit())
            && (expires == "0" || !expires.starts_with('0'));
        if !canonical {
            return Err(SignatureError::Invalid);
        }
        let expires: u64 = expires.parse().map_err(|_| SignatureError::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| SignatureError::Invalid)?;
        // Constant-time comparison, against every accepted secret.
        let valid = self.secrets.iter().any(|secret| {
            Self::mac(secret, name, expires)
                .verify_slice(&signature)
                .is_ok()
        });
        if !valid {
            return Err(SignatureError::Invalid);
        }
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now > expires {
            return Err(SignatureError::Expired);
        }
        Ok(expires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn signatures_check_name_expiry_and_secret() -> crate::Result<()> {
        let signer = UrlSigner::new("s1");
        let name = Name::new("a/b.pdf")?;
        let query = signer.sign_until(&name, 1000);
        assert_eq!(signer.verify(&name, Some(&query), at(999)), Ok(()));
        assert_eq!(signer.verify(&name, Some(&query), at(1000)), Ok(()));
        assert_eq!(
            signer.verify(&name, Some(&query), at(1001)),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            signer.verify(&name, None, at(0)),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            signer.verify(&name, Some("expires=1000"), at(0)),
            Err(SignatureError::Missing)
        );
        // Tampered name or expiry.
        assert_eq!(
            signer.verify(&Name::new("a/c.pdf")?, Some(&query), at(0)),
            Err(SignatureError::Invalid)
        );
        let later = query.replace("expires=1000", "expires=99999");
        assert_eq!(
            signer.verify(&name, Some(&later), at(0)),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            signer.verify(&name, Some("expires=x&signature=y"), at(0)),
            Err(SignatureError::Invalid)
        );
        // One spelling only: a second expires or signature, or a non-canonical expiry, is
        // refused even when the signed pair is in the query too.
        let signature = query.split("signature=").nth(1).unwrap_or_default();
        for ambiguous in [
            format!("{query}&expires=99999"),
            format!("expires=99999&{query}"),
            format!("{query}&signature={signature}"),
            format!("expires=+1000&signature={signature}"),
            format!("expires=01000&signature={signature}"),
        ] {
            assert_eq!(
                signer.verify(&name, Some(&ambiguous), at(0)),
                Err(SignatureError::Invalid),
                "{ambiguous}"
            );
        }
        assert_eq!(
            signer.verify(&name, Some(&format!("download=1&{query}")), at(0)),
            Ok(()),
            "other parameters are fine"
        );
        // Rotation: old URLs work while the old secret is listed, not after.
        let rotated = UrlSigner::new("s2").with_previous_secrets(["s1"]);
        assert_eq!(rotated.verify(&name, Some(&query), at(0)), Ok(()));
        assert_eq!(
            UrlSigner::new("s2").verify(&name, Some(&query), at(0)),
            Err(SignatureError::Invalid)
        );
        // New URLs are signed with the new secret.
        let fresh = rotated.sign_until(&name, 1000);
        assert_eq!(
            UrlSigner::new("s2").verify(&name, Some(&fresh), at(0)),
            Ok(())
        );
        assert!(
            !format!("{rotated:?}").contains("s2"),
            "secrets never show in Debug"
        );
        Ok(())
    }

    #[test]
    fn an_expiry_window_keeps_urls_stable_and_long_enough() {
        let ten_minutes = Duration::from_secs(600);
        let plain = UrlSigner::new("s");
        assert_eq!(plain.expiry_for(at(1_000), ten_minutes), 1_600);
        assert_eq!(plain.expiry_for(at(1_001), ten_minutes), 1_601);

        let windowed = UrlSigner::new("s").with_expiry_window(Duration::from_secs(3600));
        // Every signing time within one window gives one expiry, at least ten minutes away.
        for now in [3_001, 5_000, 3_600 * 2 - 600] {
            assert_eq!(
                windowed.expiry_for(at(now), ten_minutes),
                3_600 * 2,
                "{now}"
            );
        }
        // Past the window's edge the URL changes, and still lasts ten minutes.
        assert_eq!(
            windowed.expiry_for(at(3_600 * 2 - 599), ten_minutes),
            3_600 * 3
        );
        // An expiry already on a window's edge stays there.
        assert_eq!(
            windowed.expiry_for(at(3_000), Duration::from_secs(600)),
            3_600
        );
    }
}
