//! What a backend says about a stored file and about itself.

use std::ops::Range;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::name::Name;

/// Who may fetch a file over HTTP without a signed URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Visibility {
    /// Anyone with the URL.
    #[default]
    Public,
    /// Only with a signed URL or the app's permission.
    Private,
}

impl Visibility {
    /// `"public"` or `"private"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

/// What is known about a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileMeta {
    /// The stored name.
    pub name: Name,
    /// Size in bytes.
    pub size: u64,
    /// The stored or guessed media type, such as `image/png`.
    pub content_type: Option<String>,
    /// SHA-256 of the content, where the backend keeps it (see
    /// [`Capabilities::stored_checksum`]); always set on the metadata a write returns.
    pub sha256: Option<[u8; 32]>,
    /// A strong entity tag, quoted as in HTTP: changes whenever the content changes.
    pub etag: String,
    /// When the file was first stored under this name.
    pub created: SystemTime,
    /// When its content last changed.
    pub modified: SystemTime,
    /// Public or private.
    pub visibility: Visibility,
    /// django-binary-database-files' `content_hash` (SHA-512 hex of the content's ASCII bytes,
    /// the package's default), where the backend keeps one. It is not a safe checksum (bytes
    /// from 0x80 up do not count), only what that package writes beside a mirrored file.
    pub django_content_hash: Option<String>,
}

impl FileMeta {
    /// Metadata for content whose SHA-256 is known; the ETag is derived from the checksum.
    pub fn new(name: Name, size: u64, sha256: [u8; 32], modified: SystemTime) -> Self {
        Self {
            name,
            size,
            content_type: None,
            etag: etag_from_sha256(&sha256),
            sha256: Some(sha256),
            created: modified,
            modified,
            visibility: Visibility::Public,
            django_content_hash: None,
        }
    }

    /// Metadata without a checksum, with a strong ETag the backend vouches for.
    pub fn without_checksum(name: Name, size: u64, etag: String, modified: SystemTime) -> Self {
        Self {
            name,
            size,
            content_type: None,
            sha256: None,
            etag,
            created: modified,
            modified,
            visibility: Visibility::Public,
            django_content_hash: None,
        }
    }

    /// Sets the content type.
    #[must_use]
    pub fn with_content_type(mut self, content_type: Option<String>) -> Self {
        self.content_type = content_type;
        self
    }

    /// Sets the creation time.
    #[must_use]
    pub fn with_created(mut self, created: SystemTime) -> Self {
        self.created = created;
        self
    }

    /// Sets the visibility.
    #[must_use]
    pub fn with_visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// Sets django-binary-database-files' content hash.
    #[must_use]
    pub fn with_django_content_hash(mut self, hash: Option<String>) -> Self {
        self.django_content_hash = hash;
        self
    }

    /// The checksum as 64 lower-case hex digits.
    pub fn sha256_hex(&self) -> Option<String> {
        self.sha256.map(hex::encode)
    }
}

/// The strong ETag for a SHA-256: the hex digest in quotes.
pub fn etag_from_sha256(sha256: &[u8; 32]) -> String {
    format!("\"{}\"", hex::encode(sha256))
}

/// A SHA-256 over content as it streams past.
#[derive(Debug, Clone, Default)]
pub struct ContentHasher {
    hasher: Sha256,
    size: u64,
}

impl ContentHasher {
    /// An empty hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
    }

    /// Bytes seen so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest and the total size.
    pub fn finish(self) -> ([u8; 32], u64) {
        (self.hasher.finalize().into(), self.size)
    }
}

/// What a backend can and cannot do. Code that serves or copies files checks this instead of
/// guessing from errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `listdir` works.
    pub listdir: bool,
    /// `open` with a range reads only that range (otherwise it is emulated by skipping).
    pub range: bool,
    /// `put_new` is atomic: two writers racing for one name never both win.
    pub atomic_create: bool,
    /// `metadata` returns the SHA-256 (otherwise only writes do).
    pub stored_checksum: bool,
    /// The stored content type survives a round trip (otherwise it is guessed from the name).
    pub stored_content_type: bool,
    /// Private files can be stored.
    pub private_files: bool,
    /// The longest name, in characters, the backend can store (a `varchar(255)` column); `save`
    /// shortens longer names as Django's `max_length` does.
    pub max_name_length: Option<usize>,
    /// The largest file the backend stores (single-row database layouts hold a whole file in
    /// one value); a larger one is [`Error::TooLarge`] and stores nothing.
    pub max_file_size: Option<u64>,
}

impl Capabilities {
    /// Everything supported.
    pub const fn full() -> Self {
        Self {
            listdir: true,
            range: true,
            atomic_create: true,
            stored_checksum: true,
            stored_content_type: true,
            private_files: true,
            max_name_length: None,
            max_file_size: None,
        }
    }
}

/// What `listdir` finds directly under a directory: names relative to it, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Subdirectories (each holds at least one file).
    pub dirs: Vec<String>,
    /// Files.
    pub files: Vec<String>,
}

/// A byte range to read, resolved against the file's size by [`ByteRange::resolve`].
///
/// Reading is like slicing: an end past the file is cut to its size, a start at the very end
/// reads nothing, a start past the end is [`Error::InvalidRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// Bytes `start..end` (end exclusive).
    Bounded {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// From `start` to the end of the file.
    From(u64),
    /// The last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// `start..end`, end exclusive.
    pub fn new(start: u64, end: u64) -> Self {
        Self::Bounded { start, end }
    }

    /// The byte offsets this range covers in a file of `size` bytes.
    pub fn resolve(self, size: u64) -> Result<Range<u64>> {
        let (start, end) = match self {
            Self::Bounded { start, end } => (start, end.min(size).max(start.min(size))),
            Self::From(start) => (start, size),
            Self::Suffix(n) => (size.saturating_sub(n), size),
        };
        if start > size {
            return Err(Error::InvalidRange { start, size });
        }
        Ok(start..end)
    }
}

impl From<Range<u64>> for ByteRange {
    fn from(range: Range<u64>) -> Self {
        Self::new(range.start, range.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_slices() -> Result<()> {
        assert_eq!(ByteRange::new(0, 1).resolve(10)?, 0..1);
        assert_eq!(ByteRange::new(9, 10).resolve(10)?, 9..10);
        assert_eq!(ByteRange::new(5, 100).resolve(10)?, 5..10);
        assert_eq!(ByteRange::new(7, 3).resolve(10)?, 7..7);
        assert_eq!(ByteRange::From(4).resolve(10)?, 4..10);
        assert_eq!(ByteRange::From(10).resolve(10)?, 10..10);
        assert_eq!(ByteRange::Suffix(3).resolve(10)?, 7..10);
        assert_eq!(ByteRange::Suffix(30).resolve(10)?, 0..10);
        assert_eq!(ByteRange::Suffix(0).resolve(0)?, 0..0);
        assert!(matches!(
            ByteRange::From(11).resolve(10),
            Err(Error::InvalidRange {
                start: 11,
                size: 10
            })
        ));
        assert!(matches!(
            ByteRange::new(11, 12).resolve(10),
            Err(Error::InvalidRange { .. })
        ));
        Ok(())
    }

    #[test]
    fn hasher_counts_and_digests() {
        let mut hasher = ContentHasher::new();
        hasher.update(b"ab");
        hasher.update(b"c");
        let (digest, size) = hasher.finish();
        assert_eq!(size, 3);
        assert_eq!(
            hex::encode(digest),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(etag_from_sha256(&digest).len(), 66);
    }
}
