//! [`ResponseBody`]: a response body any framework can carry.

use bytes::Bytes;
use storage_core::{bytes_stream, empty_stream, ByteStream};

/// The body of a response from [`serve`](crate::serve): nothing, or a stream of known length.
/// Adapters turn it into their framework's body type.
pub struct ResponseBody {
    stream: ByteStream,
    length: u64,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// No bytes.
    pub fn empty() -> Self {
        Self {
            stream: empty_stream(),
            length: 0,
        }
    }

    /// A stream that yields exactly `length` bytes.
    pub fn sized(stream: ByteStream, length: u64) -> Self {
        Self { stream, length }
    }

    /// How many bytes the stream yields.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The bytes, as a stream.
    pub fn into_stream(self) -> ByteStream {
        self.stream
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        let length = bytes.len() as u64;
        Self {
            stream: bytes_stream(bytes),
            length,
        }
    }
}

impl From<String> for ResponseBody {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}
