//! Recognising a raster image from its first bytes: `infer` names the type from the magic
//! number, `imagesize` reads the width and height from the header. Nothing is decoded, so a
//! large image costs no more than its header.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::stream::{ByteStream, Content};

/// How many leading bytes an image may need before its size can be read (a JPEG with a large
/// EXIF block puts its dimensions late).
pub const IMAGE_SNIFF_BYTES: usize = 256 * 1024;

/// Width and height of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageSize {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

/// What the first bytes of a raster image say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The type the magic number names (`image/png`).
    pub content_type: String,
    /// The size the header records.
    pub size: ImageSize,
}

/// Which images are accepted: the bytes must be a raster image whose size can be read, within
/// the given bounds. Used by uploads (`storage-http`) and image model fields (`storage-diesel`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImagePolicy {
    /// Widest image accepted.
    pub max_width: Option<u32>,
    /// Tallest image accepted.
    pub max_height: Option<u32>,
}

impl ImagePolicy {
    /// Any raster image.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most this many pixels across and down.
    #[must_use]
    pub fn max_size(mut self, width: u32, height: u32) -> Self {
        self.max_width = Some(width);
        self.max_height = Some(height);
        self
    }

    /// This policy and `other` both: the smaller of each bound. What an upload route's policy
    /// and a model field's image rule make together.
    #[must_use]
    pub fn within(self, other: &Self) -> Self {
        let smaller = |a: Option<u32>, b: Option<u32>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self {
            max_width: smaller(self.max_width, other.max_width),
            max_height: smaller(self.max_height, other.max_height),
        }
    }

    /// Checks what [`probe_image`] found in the head of the file named `filename`: its size, or
    /// [`Error::UnsupportedType`] when it is no image or a larger one than accepted.
    pub fn check(&self, probe: Option<&ImageInfo>, filename: &str) -> Result<ImageSize> {
        let Some(info) = probe else {
            return Err(Error::UnsupportedType {
                reason: format!("'{filename}' is not an image"),
            });
        };
        let ImageSize { width, height } = info.size;
        if self.max_width.is_some_and(|max| width > max)
            || self.max_height.is_some_and(|max| height > max)
        {
            return Err(Error::UnsupportedType {
                reason: format!(
                    "'{filename}' is {width}x{height}, larger than the {}x{} allowed",
                    self.max_width
                        .map_or_else(|| "any".to_owned(), |w| w.to_string()),
                    self.max_height
                        .map_or_else(|| "any".to_owned(), |h| h.to_string()),
                ),
            });
        }
        Ok(info.size)
    }
}

/// The type and size of the raster image whose file starts with `head`; `None` when the bytes
/// are not a raster image, or not enough of it to read the size.
pub fn probe_image(head: &[u8]) -> Option<ImageInfo> {
    let content_type = infer::get(head)
        .map(|kind| kind.mime_type())
        .filter(|mime| mime.starts_with("image/"))?;
    let size = imagesize::blob_size(head).ok()?;
    Some(ImageInfo {
        content_type: content_type.to_owned(),
        size: ImageSize {
            width: u32::try_from(size.width).unwrap_or(u32::MAX),
            height: u32::try_from(size.height).unwrap_or(u32::MAX),
        },
    })
}

/// Reads the start of `content` until its image size shows (at most [`IMAGE_SNIFF_BYTES`]) and
/// gives the probe back with content that still yields every byte, the head first; memory
/// stays at the head's size however large the file.
pub async fn peek_image(content: Content) -> Result<(Option<ImageInfo>, Content)> {
    let Content {
        mut stream,
        content_type,
    } = content;
    let mut head = BytesMut::new();
    let mut probe = None;
    while head.len() < IMAGE_SNIFF_BYTES {
        match stream.next().await {
            Some(chunk) => {
                head.extend_from_slice(&chunk?);
                probe = probe_image(&head);
                if probe.is_some() {
                    break;
                }
            }
            None => break,
        }
    }
    let head: Bytes = head.freeze();
    let stream: ByteStream = if head.is_empty() {
        stream
    } else {
        Box::pin(futures::stream::once(async move { Ok(head) }).chain(stream))
    };
    Ok((
        probe,
        Content {
            stream,
            content_type,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{bytes_stream, collect_bytes};

    /// A 3x2 PNG header (signature + IHDR), enough for the probe.
    fn png_head() -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&3u32.to_be_bytes());
        png.extend_from_slice(&2u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        png
    }

    #[test]
    fn a_png_header_is_an_image_and_text_is_not() {
        let info = probe_image(&png_head());
        assert_eq!(
            info,
            Some(ImageInfo {
                content_type: "image/png".to_owned(),
                size: ImageSize {
                    width: 3,
                    height: 2
                }
            })
        );
        assert_eq!(probe_image(b"just some text, not an image"), None);
        // A PDF has a magic number but is no image.
        assert_eq!(probe_image(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), None);

        let policy = ImagePolicy::new().max_size(3, 3);
        let png = probe_image(&png_head());
        assert_eq!(
            policy.check(png.as_ref(), "a.png").map(|s| s.height).ok(),
            Some(2)
        );
        let small = ImagePolicy::new()
            .max_size(2, 2)
            .check(png.as_ref(), "a.png");
        assert!(
            matches!(small, Err(Error::UnsupportedType { ref reason }) if reason.contains("3x2"))
        );
        assert!(policy.check(None, "notes.txt").is_err());
    }

    #[tokio::test]
    async fn peeking_keeps_every_byte() -> Result<()> {
        let mut file = png_head();
        file.extend(std::iter::repeat_n(7u8, 300_000));
        let chunks = crate::stream::chunked_stream(Bytes::from(file.clone()), 1000);
        let (info, content) = peek_image(Content::from_stream(chunks)).await?;
        assert_eq!(info.map(|i| i.size.width), Some(3));
        assert_eq!(
            collect_bytes(content.stream).await?.as_ref(),
            file.as_slice()
        );

        let (info, content) = peek_image(Content::from_stream(bytes_stream("plain"))).await?;
        assert!(info.is_none());
        assert_eq!(collect_bytes(content.stream).await?.as_ref(), b"plain");
        Ok(())
    }
}
