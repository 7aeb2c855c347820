//! Content as a stream of [`Bytes`], so no operation needs a whole file in memory.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::io::AsyncRead;

use crate::error::{Error, Result};

/// Content going into or coming out of a storage, one chunk at a time.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// The chunk size reads use unless a backend has its own (64 KiB).
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;

/// A stream of one chunk (none for empty content).
pub fn bytes_stream(content: impl Into<Bytes>) -> ByteStream {
    let content = content.into();
    if content.is_empty() {
        return empty_stream();
    }
    Box::pin(futures::stream::once(async move { Ok(content) }))
}

/// A stream with no content.
pub fn empty_stream() -> ByteStream {
    Box::pin(futures::stream::empty())
}

/// `content` cut into chunks of at most `chunk_size` bytes, without copying.
pub fn chunked_stream(content: Bytes, chunk_size: usize) -> ByteStream {
    let chunk_size = chunk_size.max(1);
    let chunks = (0..content.len())
        .step_by(chunk_size)
        .map(move |start| Ok(content.slice(start..(start + chunk_size).min(content.len()))));
    Box::pin(futures::stream::iter(chunks.collect::<Vec<_>>()))
}

/// Reads `reader` to its end in chunks of `chunk_size`; I/O errors become [`Error::Backend`]
/// errors of `backend`.
pub fn reader_stream<R>(reader: R, chunk_size: usize, backend: &'static str) -> ByteStream
where
    R: AsyncRead + Send + 'static,
{
    Box::pin(
        tokio_util::io::ReaderStream::with_capacity(reader, chunk_size.max(1))
            .map_err(move |e| Error::backend(backend, "read failed", e)),
    )
}

/// Collects a whole stream into memory. For small files and tests; large files should stream.
pub async fn collect_bytes(mut stream: ByteStream) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(buf.freeze())
}

/// Content handed to [`StorageExt::save`](crate::StorageExt::save): a stream plus what the
/// content knows about itself.
pub struct Content {
    /// The bytes.
    pub stream: ByteStream,
    /// The media type the content declares, if any.
    pub content_type: Option<String>,
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Content")
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl Content {
    /// Content from a stream, with no declared type.
    pub fn from_stream(stream: ByteStream) -> Self {
        Self {
            stream,
            content_type: None,
        }
    }

    /// Declares the media type.
    #[must_use]
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }
}

/// Anything that can be saved: byte buffers, strings, streams, [`ContentFile`](crate::ContentFile)
/// and [`UploadedFile`](crate::UploadedFile).
pub trait IntoContent {
    /// Converts into a stream and its declared type.
    fn into_content(self) -> Content;
}

impl IntoContent for Content {
    fn into_content(self) -> Content {
        self
    }
}

impl IntoContent for ByteStream {
    fn into_content(self) -> Content {
        Content::from_stream(self)
    }
}

impl IntoContent for Bytes {
    fn into_content(self) -> Content {
        Content::from_stream(bytes_stream(self))
    }
}

impl IntoContent for Vec<u8> {
    fn into_content(self) -> Content {
        Bytes::from(self).into_content()
    }
}

impl IntoContent for &'static [u8] {
    fn into_content(self) -> Content {
        Bytes::from_static(self).into_content()
    }
}

impl<const N: usize> IntoContent for &'static [u8; N] {
    fn into_content(self) -> Content {
        Bytes::from_static(self).into_content()
    }
}

impl IntoContent for String {
    fn into_content(self) -> Content {
        Bytes::from(self).into_content()
    }
}

impl IntoContent for &'static str {
    fn into_content(self) -> Content {
        Bytes::from_static(self.as_bytes()).into_content()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunking_keeps_every_byte() -> Result<()> {
        let data = Bytes::from((0..=255u8).cycle().take(1000).collect::<Vec<_>>());
        let chunks: Vec<Bytes> = chunked_stream(data.clone(), 300).try_collect().await?;
        assert_eq!(
            chunks.iter().map(Bytes::len).collect::<Vec<_>>(),
            [300, 300, 300, 100]
        );
        assert_eq!(
            collect_bytes(chunked_stream(data.clone(), 300)).await?,
            data
        );
        assert_eq!(
            collect_bytes(bytes_stream(Bytes::new())).await?,
            Bytes::new()
        );
        let read = collect_bytes(reader_stream(
            std::io::Cursor::new(data.to_vec()),
            7,
            "test",
        ))
        .await?;
        assert_eq!(read, data);
        Ok(())
    }
}
