//! Uploads: multipart file fields streamed straight into [`StorageExt::save_with`], with limits,
//! a safe basename, a content-type allow-list checked against the sniffed bytes, and an image
//! policy.

use bytes::{Bytes, BytesMut};
use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use storage_core::naming::sanitize_upload_filename;
use storage_core::{
    guess_content_type, probe_image, ByteStream, Content, Error, FileMeta, ImageInfo, ImagePolicy,
    ImageSize, Name, SaveOptions, Storage, StorageExt, IMAGE_SNIFF_BYTES,
};

use crate::headers::{essence, type_matches};

/// Longest text (non-file) field kept, in bytes.
pub const MAX_TEXT_FIELD: usize = 64 * 1024;

/// How many leading bytes are read before a file is stored, to sniff its type.
const SNIFF_BYTES: usize = 8 * 1024;

/// What an upload accepts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UploadPolicy {
    /// Largest file, in bytes (default 100 MiB).
    pub max_file_size: u64,
    /// Largest request body, in bytes (default 1 GiB).
    pub max_request_size: u64,
    /// Most files in one request (default 20).
    pub max_files: usize,
    /// Accepted types (`type/subtype` or `type/*`), checked against the sniffed bytes; `None`
    /// accepts any.
    pub allowed_types: Option<Vec<String>>,
    /// Only images, with their size reported.
    pub image: Option<ImagePolicy>,
    /// Only file fields with this name are stored; others are skipped.
    pub field: Option<String>,
    /// How files are named and stored (`upload_to`, visibility, ...).
    pub save: SaveOptions,
}

impl Default for UploadPolicy {
    fn default() -> Self {
        Self {
            max_file_size: 100 << 20,
            max_request_size: 1 << 30,
            max_files: 20,
            allowed_types: None,
            image: None,
            field: None,
            save: SaveOptions::default(),
        }
    }
}

impl UploadPolicy {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Largest file in bytes.
    #[must_use]
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// Largest request body in bytes.
    #[must_use]
    pub fn max_request_size(mut self, bytes: u64) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Most files per request.
    #[must_use]
    pub fn max_files(mut self, files: usize) -> Self {
        self.max_files = files;
        self
    }

    /// Accept only these types (checked against the bytes).
    #[must_use]
    pub fn allowed_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Accept only images.
    #[must_use]
    pub fn images(mut self, policy: ImagePolicy) -> Self {
        self.image = Some(policy);
        self
    }

    /// Store only the file field with this name.
    #[must_use]
    pub fn field(mut self, name: impl Into<String>) -> Self {
        self.field = Some(name.into());
        self
    }

    /// How files are named and stored.
    #[must_use]
    pub fn save_options(mut self, save: SaveOptions) -> Self {
        self.save = save;
        self
    }
}

/// Where uploads go and under which policy: the state an adapter's upload extractor reads.
#[derive(Clone)]
pub struct UploadTarget {
    /// The storage files go to.
    pub storage: std::sync::Arc<dyn Storage>,
    /// Limits, accepted types, naming.
    pub policy: std::sync::Arc<UploadPolicy>,
}

impl std::fmt::Debug for UploadTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadTarget")
            .field("storage", &self.storage)
            .field("policy", &self.policy)
            .finish()
    }
}

impl UploadTarget {
    /// Files go to `storage` under `policy`.
    pub fn new(storage: std::sync::Arc<dyn Storage>, policy: UploadPolicy) -> Self {
        Self {
            storage,
            policy: std::sync::Arc::new(policy),
        }
    }

    /// [`save_multipart`] into this target.
    pub async fn save_multipart<S, E>(&self, content_type: &str, body: S) -> Result<Upload, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        save_multipart(self.storage.as_ref(), content_type, body, &self.policy).await
    }
}

/// One stored file of an upload.
#[derive(Debug, Clone)]
pub struct SavedUpload {
    /// The form field it came in.
    pub field: String,
    /// The client's file name, cut to a safe basename.
    pub client_filename: String,
    /// The stored file.
    pub meta: FileMeta,
    /// Its size, when the policy asked for images.
    pub image: Option<ImageSize>,
}

/// What an upload request stored, and its text fields.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// The stored files, in request order.
    pub files: Vec<SavedUpload>,
    /// The text fields (name, value), in request order.
    pub fields: Vec<(String, String)>,
}

fn bad_request(reason: impl Into<String>) -> Error {
    Error::BadRequest {
        reason: reason.into(),
    }
}

fn multipart_error(e: multer::Error, policy: &UploadPolicy) -> Error {
    match e {
        multer::Error::StreamSizeExceeded { .. } => Error::TooLarge {
            limit: policy.max_request_size,
        },
        multer::Error::FieldSizeExceeded { .. } => Error::TooLarge {
            limit: policy.max_file_size,
        },
        other => bad_request(format!("malformed multipart body: {other}")),
    }
}

/// Reads a `multipart/form-data` body and stores its file fields in `storage`, streaming each
/// straight into [`StorageExt::save_with`] with no temporary file. The whole request is
/// all-or-nothing: if any file is refused (too large, wrong type, bad name) or the body breaks
/// off, the files already stored by this request are deleted and the error is returned.
pub async fn save_multipart<S, E>(
    storage: &dyn Storage,
    content_type: &str,
    body: S,
    policy: &UploadPolicy,
) -> Result<Upload, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| bad_request("expected a multipart/form-data body with a boundary"))?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(policy.max_request_size)
            .per_field(policy.max_file_size),
    );
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
    let mut upload = Upload::default();
    let outcome = read_fields(storage, &mut multipart, policy, &mut upload).await;
    if let Err(e) = outcome {
        for saved in &upload.files {
            // Best effort; a failure here leaves a file the app can still see and delete.
            let _ = storage.delete(&saved.meta.name).await;
        }
        return Err(e);
    }
    Ok(upload)
}

async fn read_fields(
    storage: &dyn Storage,
    multipart: &mut multer::Multipart<'static>,
    policy: &UploadPolicy,
    upload: &mut Upload,
) -> Result<(), Error> {
    // Bounded by the request size limit: every field consumes body bytes.
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, policy))?
    {
        let field_name = field.name().unwrap_or_default().to_owned();
        let Some(client_name) = field.file_name().map(str::to_owned) else {
            let mut text = BytesMut::new();
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| multipart_error(e, policy))?
            {
                if text.len() + chunk.len() > MAX_TEXT_FIELD {
                    return Err(Error::TooLarge {
                        limit: MAX_TEXT_FIELD as u64,
                    });
                }
                text.extend_from_slice(&chunk);
            }
            let value = String::from_utf8(text.to_vec())
                .map_err(|_| bad_request(format!("field '{field_name}' is not UTF-8")))?;
            upload.fields.push((field_name, value));
            continue;
        };
        if policy
            .field
            .as_ref()
            .is_some_and(|wanted| *wanted != field_name)
        {
            while field
                .chunk()
                .await
                .map_err(|e| multipart_error(e, policy))?
                .is_some()
            {}
            continue;
        }
        if upload.files.len() >= policy.max_files {
            return Err(bad_request(format!(
                "more than {} files in one request",
                policy.max_files
            )));
        }
        let client_filename =
            sanitize_upload_filename(&client_name).ok_or_else(|| Error::InvalidName {
                name: client_name.escape_debug().to_string(),
                reason: "no usable file name".to_owned(),
            })?;
        let declared = field.content_type().map(ToString::to_string);
        let saved = save_field(
            storage,
            &mut field,
            policy,
            &field_name,
            client_filename,
            declared,
        )
        .await?;
        upload.files.push(saved);
    }
    Ok(())
}

async fn save_field(
    storage: &dyn Storage,
    field: &mut multer::Field<'static>,
    policy: &UploadPolicy,
    field_name: &str,
    client_filename: String,
    declared: Option<String>,
) -> Result<SavedUpload, Error> {
    // Refuse a name before reading the content.
    policy.save.generate_name(&client_filename)?;
    let want = if policy.image.is_some() {
        IMAGE_SNIFF_BYTES
    } else {
        SNIFF_BYTES
    };
    let mut head = BytesMut::new();
    let mut finished = false;
    // What the head shows of an image, kept for the check below (it is read only once).
    let mut image_probe = None;
    while head.len() < want {
        match field
            .chunk()
            .await
            .map_err(|e| multipart_error(e, policy))?
        {
            Some(chunk) => {
                head.extend_from_slice(&chunk);
                if policy.image.is_some() {
                    image_probe = probe_image(&head);
                    if image_probe.is_some() {
                        break;
                    }
                }
            }
            None => {
                finished = true;
                break;
            }
        }
    }
    if head.len() as u64 > policy.max_file_size {
        return Err(Error::TooLarge {
            limit: policy.max_file_size,
        });
    }
    let head = head.freeze();
    let (content_type, image) = check_content(
        &head,
        image_probe.as_ref(),
        declared.as_deref(),
        &client_filename,
        policy,
    )?;

    // The sniffed head, then the rest of the field through a small channel: backpressure keeps
    // memory flat, and a limit hit mid-field reaches the storage as an error, which stores nothing.
    let (mut tx, rx) = mpsc::channel::<Result<Bytes, Error>>(2);
    let stream: ByteStream = Box::pin(futures::stream::once(async move { Ok(head) }).chain(rx));
    let content = Content {
        stream,
        content_type: Some(content_type),
    };
    let limit = policy.max_file_size;
    // Moves the sender in: when the field ends, the sender is dropped and the stream ends.
    let pump = async move {
        if finished {
            return;
        }
        let mut sent = 0u64;
        loop {
            let item = match field.chunk().await {
                Ok(Some(chunk)) => {
                    sent += chunk.len() as u64;
                    if sent > limit {
                        Err(Error::TooLarge { limit })
                    } else {
                        Ok(chunk)
                    }
                }
                Ok(None) => break,
                Err(e) => Err(multipart_error(e, policy)),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    };
    let save = storage.save_with(&client_filename, content, &policy.save);
    let (meta, ()) = futures::join!(save, pump);
    Ok(SavedUpload {
        field: field_name.to_owned(),
        client_filename,
        meta: meta?,
        image,
    })
}

/// Decides the stored type from the bytes, and refuses content the policy does not accept.
fn check_content(
    head: &[u8],
    image_probe: Option<&ImageInfo>,
    declared: Option<&str>,
    client_filename: &str,
    policy: &UploadPolicy,
) -> Result<(String, Option<ImageSize>), Error> {
    let sniffed = infer::get(head).map(|t| t.mime_type().to_owned());
    let claimed = declared
        .map(essence)
        .filter(|t| !t.is_empty() && t != "application/octet-stream")
        .or_else(|| guess_content_type(client_filename));
    let image = match &policy.image {
        Some(rules) => Some(rules.check(image_probe, client_filename)?),
        None => None,
    };
    let stored = match (&sniffed, &claimed) {
        (Some(sniffed), _) => sniffed.clone(),
        (None, Some(claimed)) => claimed.clone(),
        (None, None) => "application/octet-stream".to_owned(),
    };
    if let Some(allowed) = &policy.allowed_types {
        let accepted = match &sniffed {
            // The bytes say what it is: that is what must be allowed.
            Some(sniffed) => type_matches(sniffed, allowed),
            // No magic number: only text-like claims can be taken at their word.
            None => claimed
                .as_deref()
                .is_some_and(|c| is_textual(c) && type_matches(c, allowed)),
        };
        if !accepted {
            return Err(Error::UnsupportedType {
                reason: format!(
                    "'{client_filename}' is {stored}; accepted: {}",
                    allowed.join(", ")
                ),
            });
        }
    }
    Ok((stored, image))
}

/// Types without a magic number, which sniffing cannot confirm or refute.
fn is_textual(content_type: &str) -> bool {
    let essence = essence(content_type);
    essence.starts_with("text/")
        || matches!(essence.as_str(), "application/json" | "application/csv")
}

/// The name a file field would be stored under, for handlers that want to check it first.
pub fn upload_name(client_filename: &str, policy: &UploadPolicy) -> Result<Name, Error> {
    let safe = sanitize_upload_filename(client_filename).ok_or_else(|| Error::InvalidName {
        name: client_filename.escape_debug().to_string(),
        reason: "no usable file name".to_owned(),
    })?;
    policy.save.generate_name(&safe)
}
