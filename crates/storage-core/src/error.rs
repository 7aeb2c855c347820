//! The one error type every storage operation returns.

use std::error::Error as StdError;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Boxed source error kept inside [`Error::Backend`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong in a storage operation.
///
/// Match on meaning, not on text: `matches!(e, Error::NotFound { .. })`. Each variant maps to one
/// HTTP status in `storage-http`. Messages name the storage name the caller passed in, not where a
/// stored file lies on disk, and never contain a password (a storage URL in a message has it
/// replaced by `***`). A location the application configured can appear: a SQLite database's file
/// in its connect errors, the media root and its copies' paths in `MirroredStorage::new` and
/// `export` errors. Over HTTP, `storage-http` answers server errors (backend failures included)
/// with a bare status line and no detail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No file is stored under this name.
    #[error("file not found: '{name}'")]
    NotFound {
        /// The name that was looked up.
        name: String,
    },

    /// A create-only write found the name taken, or no free alternative name was found.
    #[error("a file named '{name}' already exists")]
    AlreadyExists {
        /// The name that was taken.
        name: String,
    },

    /// The name tries to leave the storage root: absolute path, `..`, NUL or another control
    /// character, or a drive prefix. A backslash is not refused: it becomes `/`.
    #[error("suspicious file name '{name}': {reason}")]
    SuspiciousPath {
        /// The name as given (control characters escaped when displayed).
        name: String,
        /// Why it was refused.
        reason: String,
    },

    /// The name is not usable: empty, cleans to nothing, too long, or does not fit `max_length`.
    #[error("invalid file name '{name}': {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: String,
    },

    /// The backend refused access (filesystem permissions, database grants).
    #[error("permission denied for '{name}'")]
    PermissionDenied {
        /// The name that was refused.
        name: String,
    },

    /// The backend cannot do this at all (see [`crate::Capabilities`]).
    #[error("not supported by the {backend} backend: {operation}")]
    NotSupported {
        /// Short name of the backend.
        backend: &'static str,
        /// What was asked for.
        operation: String,
    },

    /// The content is larger than a configured limit. Nothing was stored.
    #[error("content too large: the limit is {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },

    /// The request itself is malformed (a broken multipart body, too many files, a missing
    /// boundary). Nothing was stored.
    #[error("bad request: {reason}")]
    BadRequest {
        /// What is wrong with it.
        reason: String,
    },

    /// The content is not of a type this upload accepts (checked against the bytes, not only the
    /// declared type). Nothing was stored.
    #[error("unsupported content type: {reason}")]
    UnsupportedType {
        /// What was found and what is accepted.
        reason: String,
    },

    /// A model field holds no file, so there is nothing to open, measure or delete (Django's
    /// "The 'photo' attribute has no file associated with it.").
    #[error("the '{field}' field has no file")]
    EmptyField {
        /// The field (column) name.
        field: String,
    },

    /// A byte range starts past the end of the file.
    #[error("range start {start} is past the end of a {size}-byte file")]
    InvalidRange {
        /// First byte asked for.
        start: u64,
        /// The file's size.
        size: u64,
    },

    /// The backend itself failed (I/O error, database unreachable, ...). Retrying may help.
    #[error("{backend} backend failure: {message}")]
    Backend {
        /// Short name of the backend.
        backend: &'static str,
        /// What the backend was doing, without secrets.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// A [`Error::Backend`] with a source error.
    pub fn backend(
        backend: &'static str,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Backend {
            backend,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn suspicious(name: &str, reason: impl Into<String>) -> Self {
        Self::SuspiciousPath {
            name: name.escape_debug().to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(name: &str, reason: impl Into<String>) -> Self {
        Self::InvalidName {
            name: name.escape_debug().to_string(),
            reason: reason.into(),
        }
    }

    /// True for errors that say something about the name (suspicious or invalid), as opposed to
    /// the content or the backend.
    pub fn is_name_error(&self) -> bool {
        matches!(self, Self::SuspiciousPath { .. } | Self::InvalidName { .. })
    }
}
