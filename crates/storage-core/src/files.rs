//! File values as Django has them: [`ContentFile`] (bytes in memory) and [`UploadedFile`] (an
//! upload that spills to a temporary file past a threshold).

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::naming::sanitize_upload_filename;
use crate::stream::{
    chunked_stream, reader_stream, ByteStream, Content, IntoContent, DEFAULT_CHUNK_SIZE,
};

/// Bytes in memory, with an optional name and type: Django's `ContentFile`.
///
/// ```
/// use storage_core::ContentFile;
/// let file = ContentFile::new("hello").with_name("greeting.txt");
/// assert_eq!((file.size(), file.name()), (5, Some("greeting.txt")));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ContentFile {
    content: Bytes,
    name: Option<String>,
    content_type: Option<String>,
}

impl ContentFile {
    /// Wraps the bytes.
    pub fn new(content: impl Into<Bytes>) -> Self {
        Self {
            content: content.into(),
            name: None,
            content_type: None,
        }
    }

    /// Sets a name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Declares the media type.
    #[must_use]
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// The name, if set.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.content.len() as u64
    }

    /// The declared media type.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.content
    }

    /// The content in chunks of `chunk_size` bytes.
    pub fn chunks(&self, chunk_size: usize) -> ByteStream {
        chunked_stream(self.content.clone(), chunk_size)
    }
}

impl IntoContent for ContentFile {
    fn into_content(self) -> Content {
        Content {
            stream: chunked_stream(self.content, DEFAULT_CHUNK_SIZE),
            content_type: self.content_type,
        }
    }
}

/// An uploaded file on its way to storage: kept in memory up to a threshold (Django's
/// `FILE_UPLOAD_MAX_MEMORY_SIZE`, 2.5 MiB by default) and spilled to an anonymous temporary file
/// above it, which the OS removes when the value is dropped.
///
/// The client's file name is cut to a safe basename on the way in
/// ([`sanitize_upload_filename`]).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use storage_core::UploadedFile;
/// let mut upload = UploadedFile::new(Some("../../avatar.png"), Some("image/png"), None);
/// upload.write(b"\x89PNG...".as_slice().into()).await?;
/// assert_eq!(upload.name(), Some("avatar.png"));
/// assert_eq!(upload.size(), 7);
/// assert!(upload.is_in_memory());
/// # Ok::<(), storage_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct UploadedFile {
    name: Option<String>,
    content_type: Option<String>,
    charset: Option<String>,
    size: u64,
    threshold: u64,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Memory(Vec<Bytes>),
    Spilled(tokio::fs::File),
}

const BACKEND: &str = "upload";

impl UploadedFile {
    /// Django's default in-memory threshold: 2.5 MiB.
    pub const DEFAULT_MEMORY_THRESHOLD: u64 = 2_621_440;

    /// An empty upload. `name` is the client's file name, sanitized here.
    pub fn new(name: Option<&str>, content_type: Option<&str>, charset: Option<&str>) -> Self {
        Self {
            name: name.and_then(sanitize_upload_filename),
            content_type: content_type.map(str::to_owned),
            charset: charset.map(str::to_owned),
            size: 0,
            threshold: Self::DEFAULT_MEMORY_THRESHOLD,
            body: Body::Memory(Vec::new()),
        }
    }

    /// Sets the in-memory threshold in bytes.
    #[must_use]
    pub fn with_memory_threshold(mut self, threshold: u64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Reads a whole stream into a new upload.
    pub async fn from_stream(
        name: Option<&str>,
        content_type: Option<&str>,
        threshold: u64,
        mut stream: ByteStream,
    ) -> Result<Self> {
        let mut upload = Self::new(name, content_type, None).with_memory_threshold(threshold);
        while let Some(chunk) = stream.next().await {
            upload.write(chunk?).await?;
        }
        Ok(upload)
    }

    /// Appends a chunk, spilling to a temporary file when the threshold is passed.
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.size += chunk.len() as u64;
        if let Body::Memory(chunks) = &mut self.body {
            if self.size <= self.threshold {
                chunks.push(chunk);
                return Ok(());
            }
            let held = std::mem::take(chunks);
            let std_file = tokio::task::spawn_blocking(tempfile::tempfile)
                .await
                .map_err(|e| Error::backend(BACKEND, "temporary file task failed", e))?
                .map_err(|e| Error::backend(BACKEND, "cannot create a temporary file", e))?;
            let mut file = tokio::fs::File::from_std(std_file);
            for held_chunk in held {
                write_all(&mut file, &held_chunk).await?;
            }
            self.body = Body::Spilled(file);
        }
        if let Body::Spilled(file) = &mut self.body {
            write_all(file, &chunk).await?;
        }
        Ok(())
    }

    /// The sanitized client file name, if there was a usable one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The media type the client declared.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The charset the client declared.
    pub fn charset(&self) -> Option<&str> {
        self.charset.as_deref()
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True while the content is held in memory.
    pub fn is_in_memory(&self) -> bool {
        matches!(self.body, Body::Memory(_))
    }

    /// The content from the start, in chunks of at most `chunk_size` bytes.
    pub async fn chunks(self, chunk_size: usize) -> Result<ByteStream> {
        match self.body {
            Body::Memory(chunks) => Ok(Box::pin(
                futures::stream::iter(chunks)
                    .flat_map(move |chunk| chunked_stream(chunk, chunk_size)),
            )),
            Body::Spilled(mut file) => {
                file.flush()
                    .await
                    .map_err(|e| Error::backend(BACKEND, "flush failed", e))?;
                file.rewind()
                    .await
                    .map_err(|e| Error::backend(BACKEND, "rewind failed", e))?;
                Ok(reader_stream(file, chunk_size, BACKEND))
            }
        }
    }
}

async fn write_all(file: &mut tokio::fs::File, chunk: &[u8]) -> Result<()> {
    file.write_all(chunk)
        .await
        .map_err(|e| Error::backend(BACKEND, "write to temporary file failed", e))
}

impl IntoContent for UploadedFile {
    fn into_content(self) -> Content {
        let content_type = self.content_type.clone();
        let stream = futures::stream::once(self.chunks(DEFAULT_CHUNK_SIZE))
            .map(|opened| match opened {
                Ok(stream) => stream,
                Err(e) => Box::pin(futures::stream::once(async move { Err(e) })) as ByteStream,
            })
            .flatten();
        Content {
            stream: Box::pin(stream),
            content_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::collect_bytes;

    #[tokio::test]
    async fn spills_past_the_threshold_and_reads_back_everything() -> Result<()> {
        let mut upload = UploadedFile::new(Some("C:\\Users\\me\\big.bin"), None, Some("utf-8"))
            .with_memory_threshold(10);
        upload.write(Bytes::from_static(b"0123456789")).await?;
        assert!(upload.is_in_memory());
        upload.write(Bytes::from_static(b"abc")).await?;
        assert!(!upload.is_in_memory());
        assert_eq!(
            (upload.name(), upload.size(), upload.charset()),
            (Some("big.bin"), 13, Some("utf-8"))
        );
        let stream = upload.chunks(4).await?;
        assert_eq!(
            collect_bytes(stream).await?,
            Bytes::from_static(b"0123456789abc")
        );
        Ok(())
    }

    #[tokio::test]
    async fn stays_in_memory_at_the_threshold() -> Result<()> {
        let upload = UploadedFile::from_stream(
            Some("a.txt"),
            Some("text/plain"),
            3,
            crate::bytes_stream("abc"),
        )
        .await?;
        assert!(upload.is_in_memory());
        assert_eq!(upload.content_type(), Some("text/plain"));
        let content = upload.into_content();
        assert_eq!(content.content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            collect_bytes(content.stream).await?,
            Bytes::from_static(b"abc")
        );
        Ok(())
    }

    #[test]
    fn unusable_client_names_become_none() {
        assert_eq!(UploadedFile::new(Some("/tmp/.."), None, None).name(), None);
        assert_eq!(ContentFile::new("x").name(), None);
    }
}
