//! Content kept as it streams past, so a create-only write that lost its name to another
//! writer can be sent again under the next candidate name.

use bytes::Bytes;
use std::io::Write;
use storage_core::{bytes_stream, reader_stream, ByteStream, Error, Result, DEFAULT_CHUNK_SIZE};
use tokio::sync::mpsc;

/// Content is held in memory up to this size, then in a temporary file (flat memory for large
/// uploads, as Django's `TemporaryUploadedFile`).
pub(crate) const IN_MEMORY_LIMIT: usize = 8 * 1024 * 1024;

/// A copy of the content sent so far.
#[derive(Debug, Default)]
pub(crate) struct Recording {
    chunks: Vec<Bytes>,
    held: usize,
    spill: Option<Spill>,
}

/// The temporary file a large recording goes to, written by a blocking task of its own so the
/// disk writes overlap the upload instead of adding to it.
#[derive(Debug)]
struct Spill {
    to_writer: Option<mpsc::Sender<Bytes>>,
    writer: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    path: tempfile::TempPath,
}

fn spill_error(e: impl Into<storage_core::BoxError>) -> Error {
    Error::Backend {
        backend: "opendal",
        message: "cannot keep a copy of the upload".to_owned(),
        source: Some(e.into()),
    }
}

impl Spill {
    fn start() -> Result<Self> {
        let (file, path) = tempfile::NamedTempFile::new()
            .map_err(spill_error)?
            .into_parts();
        // A few chunks in flight: the upload runs ahead of the disk by at most that much.
        let (to_writer, mut chunks) = mpsc::channel::<Bytes>(8);
        let writer = tokio::task::spawn_blocking(move || {
            let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
            while let Some(chunk) = chunks.blocking_recv() {
                file.write_all(&chunk)?;
            }
            file.flush()
        });
        Ok(Self {
            to_writer: Some(to_writer),
            writer: Some(writer),
            path,
        })
    }

    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let sent = match &self.to_writer {
            Some(to_writer) => to_writer.send(chunk).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer stopped: its error says why.
        self.finish().await?;
        Err(spill_error("the copy's writer stopped"))
    }

    /// Waits until everything sent is on disk.
    async fn finish(&mut self) -> Result<()> {
        self.to_writer = None;
        if let Some(writer) = self.writer.take() {
            writer.await.map_err(spill_error)?.map_err(spill_error)?;
        }
        Ok(())
    }
}

impl Recording {
    /// Keeps `chunk`.
    pub(crate) async fn record(&mut self, chunk: &Bytes) -> Result<()> {
        if self.spill.is_none() && self.held + chunk.len() <= IN_MEMORY_LIMIT {
            self.held += chunk.len();
            self.chunks.push(chunk.clone());
            return Ok(());
        }
        if self.spill.is_none() {
            let mut spill = Spill::start()?;
            for held in self.chunks.drain(..) {
                spill.write(held).await?;
            }
            self.held = 0;
            self.spill = Some(spill);
        }
        if let Some(spill) = self.spill.as_mut() {
            spill.write(chunk.clone()).await?;
        }
        Ok(())
    }

    /// The recorded content as a new stream; the recording stays usable for another replay.
    pub(crate) async fn replay(&mut self) -> Result<ByteStream> {
        match self.spill.as_mut() {
            Some(spill) => {
                spill.finish().await?;
                let reader = tokio::fs::File::open(&*spill.path)
                    .await
                    .map_err(spill_error)?;
                Ok(reader_stream(reader, DEFAULT_CHUNK_SIZE * 16, "opendal"))
            }
            None if self.chunks.len() == 1 => Ok(bytes_stream(
                self.chunks.first().cloned().unwrap_or_default(),
            )),
            None => {
                let chunks: Vec<Result<Bytes>> = self.chunks.iter().cloned().map(Ok).collect();
                Ok(Box::pin(futures::stream::iter(chunks)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_and_spilled_content_replays_byte_for_byte() -> Result<()> {
        let small = Bytes::from_static(b"hello");
        let mut recording = Recording::default();
        recording.record(&small).await?;
        recording.record(&small).await?;
        assert!(recording.spill.is_none());
        let again = storage_core::collect_bytes(recording.replay().await?).await?;
        assert_eq!(again, Bytes::from_static(b"hellohello"));

        let big: Vec<Bytes> = (0..5u8)
            .map(|i| Bytes::from(vec![i; IN_MEMORY_LIMIT / 3]))
            .collect();
        let mut recording = Recording::default();
        for chunk in &big {
            recording.record(chunk).await?;
        }
        assert!(recording.spill.is_some() && recording.chunks.is_empty());
        let expected: Vec<u8> = big.iter().flat_map(|c| c.to_vec()).collect();
        for _ in 0..2 {
            let again = storage_core::collect_bytes(recording.replay().await?).await?;
            assert_eq!(again.len(), expected.len());
            assert!(again == expected.as_slice());
        }
        Ok(())
    }
}
