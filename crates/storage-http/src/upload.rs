//! Uploads: multipart file fields streamed straight into [`StorageExt::save_with`], with limits,
//! a safe basename, a content-type allow-list checked against the sniffed bytes, and an image
//! policy.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use memchr::memmem::{self, Finder};
use storage_core::naming::sanitize_upload_filename;
use storage_core::{
    guess_content_type, probe_image, ByteStream, Content, Destination, Error, FileMeta, ImageInfo,
    ImagePolicy, ImageSize, Name, Received, SaveOptions, Storage, StorageExt, IMAGE_SNIFF_BYTES,
};

use crate::headers::{essence, type_matches};

/// Longest text (non-file) field kept, in bytes.
pub const MAX_TEXT_FIELD: usize = 64 * 1024;

/// Most text-field bytes one request keeps in memory, all fields together (Django's
/// `DATA_UPLOAD_MAX_MEMORY_SIZE`, 2.5 MB): without it, `max_parts` fields of
/// [`MAX_TEXT_FIELD`] each would hold 62.5 MiB.
pub const MAX_TEXT_TOTAL: usize = 2_621_440;

/// How many leading bytes are read before a file is stored, to sniff its type.
const SNIFF_BYTES: usize = 8 * 1024;

/// Longest multipart boundary (RFC 2046 section 5.1.1: 1 to 70 characters).
const MAX_BOUNDARY_LEN: usize = 70;

/// Longest preamble before the first part, and longest header block of one part, in bytes. The
/// multipart parser keeps each whole in memory and searches it again each time more arrives, so
/// without this cap one part's headers could fill the request limit and cost time that grows
/// with its square. A browser's part headers take a few hundred bytes.
const MAX_PART_HEADERS: usize = 16 * 1024;

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
    /// Most parts, text fields and files together, in one request (default 1000, as Django's
    /// `DATA_UPLOAD_MAX_NUMBER_FIELDS`); each text field is kept in memory in
    /// [`Upload::fields`].
    pub max_parts: usize,
    /// Accepted types (`type/subtype` or `type/*`), checked against the sniffed bytes; `None`
    /// accepts any.
    pub allowed_types: Option<Vec<String>>,
    /// Only images, with their size reported.
    pub image: Option<ImagePolicy>,
    /// Only file fields with this name are stored; others are skipped.
    pub field: Option<String>,
    /// How files are named and stored (`upload_to`, visibility, ...).
    pub save: SaveOptions,
    /// Longest wait for the next bytes of the body (default 60 s, nginx's
    /// `client_body_timeout`); a stalled upload is refused and stores nothing.
    pub idle_timeout: Duration,
    /// Slowest accepted upload, in bytes per second on average once [`Self::rate_grace`] has
    /// passed (default 1 KiB/s): a body trickled in a byte at a time cannot hold a connection
    /// and a half-written file for hours.
    pub min_rate: u64,
    /// How long an upload may start slowly before [`Self::min_rate`] applies (default 30 s).
    pub rate_grace: Duration,
}

impl Default for UploadPolicy {
    fn default() -> Self {
        Self {
            max_file_size: 100 << 20,
            max_request_size: 1 << 30,
            max_files: 20,
            max_parts: 1000,
            allowed_types: None,
            image: None,
            field: None,
            save: SaveOptions::default(),
            idle_timeout: Duration::from_secs(60),
            min_rate: 1024,
            rate_grace: Duration::from_secs(30),
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

    /// Refuse an upload that sends nothing for `idle`, or that averages under `min_rate` bytes
    /// a second once `grace` has passed (slowloris bodies).
    #[must_use]
    pub fn slow_upload_limits(mut self, idle: Duration, min_rate: u64, grace: Duration) -> Self {
        self.idle_timeout = idle;
        self.min_rate = min_rate;
        self.rate_grace = grace;
        self
    }

    /// Most parts (text fields and files together) per request.
    #[must_use]
    pub fn max_parts(mut self, parts: usize) -> Self {
        self.max_parts = parts;
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

    /// [`UploadTarget::save_multipart`] for a body that must stay on the current task (actix's
    /// payload, rocket's data stream are neither `Send` nor `'static`): see [`on_this_task`].
    pub async fn save_multipart_local<S, E>(
        &self,
        content_type: &str,
        body: S,
    ) -> Result<Upload, Error>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        on_this_task(body, |body| self.save_multipart(content_type, body)).await
    }
}

/// Runs `read` over a body that must stay on the current task (actix's payload, rocket's data
/// stream are neither `Send` nor `'static`): a two-chunk channel carries it to `read`, with
/// backpressure, and when `read` ends early (a refusal, a stalled body) the body is dropped at
/// once instead of waiting on a client that may never send another byte.
async fn on_this_task<S, E, F, Fut, T>(body: S, read: F) -> Result<T, Error>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: FnOnce(mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let (mut tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let pump = async move {
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let item = chunk.map_err(std::io::Error::other);
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    };
    let read = std::pin::pin!(read(rx));
    let pump = std::pin::pin!(pump);
    match futures::future::select(read, pump).await {
        futures::future::Either::Left((done, _pump)) => done,
        futures::future::Either::Right(((), read)) => read.await,
    }
}

/// The policy an upload into `destination` runs under: the request limits of `policy`, the
/// destination's naming, its image rule together with the policy's, the smaller size limit,
/// and one file.
fn policy_into(policy: &UploadPolicy, destination: &Destination) -> UploadPolicy {
    let mut merged = policy.clone();
    merged.save = destination.save.clone();
    merged.image = match (policy.image, destination.image) {
        (Some(route), Some(field)) => Some(route.within(&field)),
        (route, field) => route.or(field),
    };
    if let Some(limit) = destination.max_bytes {
        merged.max_file_size = merged.max_file_size.min(limit);
    }
    merged.max_files = 1;
    merged
}

/// Reads a `multipart/form-data` body holding one file (the policy's [`field`](UploadPolicy::field)
/// when it names one, else the only file part) and streams that file into `destination` under
/// its rules (naming, image check, size limit) and the request limits of `policy`; the text
/// fields come back in [`Received::fields`]. No file, or more than one, is
/// [`Error::BadRequest`]; any refusal stores nothing. What the adapters' upload forms do.
///
/// How the file is named and stored (`upload_to`, visibility, overwrite) comes from the
/// destination alone: `policy.save` is not used. Image rules of both apply together, and the
/// smaller of the two size limits.
pub async fn receive_file<S, E>(
    content_type: &str,
    body: S,
    policy: &UploadPolicy,
    destination: &Destination,
) -> Result<Received, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let merged = policy_into(policy, destination);
    let storage = destination.storage.as_ref();
    let upload = save_multipart(storage, content_type, body, &merged)
        .await
        .map_err(|e| destination.explain(e))?;
    let Upload { files, fields } = upload;
    let Some(file) = files.into_iter().next() else {
        let reason = match &merged.field {
            Some(field) => format!("the upload has no file in the '{field}' field"),
            None => "the upload has no file".to_owned(),
        };
        return Err(bad_request(reason));
    };
    let received = Received::new(file.meta, file.client_filename).with_fields(fields);
    Ok(match file.image {
        Some(size) => received.with_image(size),
        None => received,
    })
}

/// [`receive_file`] for a body that must stay on the current task (actix's payload, rocket's
/// data stream).
pub async fn receive_file_local<S, E>(
    content_type: &str,
    body: S,
    policy: &UploadPolicy,
    destination: &Destination,
) -> Result<Received, Error>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    on_this_task(body, |body| {
        receive_file(content_type, body, policy, destination)
    })
    .await
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

/// Whether a part's raw `Content-Disposition` has a `filename` or `filename*` parameter,
/// whatever its value (the parameter name matched without regard to case, RFC 6266).
fn declares_file_name(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers.get(http::header::CONTENT_DISPOSITION) else {
        return false;
    };
    // Where multer looks (after `;` or a blank), but in any case and whatever follows.
    let lower = value.as_bytes().to_ascii_lowercase();
    (0..lower.len()).any(|at| {
        let starts_parameter = at == 0 || matches!(lower.get(at - 1), Some(b';' | b' ' | b'\t'));
        let after = lower
            .get(at..)
            .and_then(|rest| rest.strip_prefix(b"filename"));
        starts_parameter
            && after
                .is_some_and(|after| matches!(after.trim_ascii_start().first(), Some(b'=' | b'*')))
    })
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
        multer::Error::StreamReadFailed(source) if source.is::<PartHeadersTooLong>() => {
            bad_request(PartHeadersTooLong.to_string())
        }
        multer::Error::StreamReadFailed(source) if source.is::<TooSlow>() => {
            bad_request(source.to_string())
        }
        other => bad_request(format!("malformed multipart body: {other}")),
    }
}

/// What [`paced`] ends a slow body with.
#[derive(Debug)]
struct TooSlow(String);

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TooSlow {}

/// The body, ended with [`TooSlow`] when nothing comes for the policy's idle timeout or, after
/// its grace period, the average rate falls under its minimum.
fn paced<S, E>(
    body: S,
    policy: &UploadPolicy,
) -> impl Stream<Item = Result<Bytes, storage_core::BoxError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let (idle, min_rate, grace) = (policy.idle_timeout, policy.min_rate, policy.rate_grace);
    let started = tokio::time::Instant::now();
    let state = (Box::pin(body), 0u64, false);
    futures::stream::unfold(state, move |(mut body, mut received, done)| async move {
        if done {
            return None;
        }
        let slow = |why: String| -> storage_core::BoxError { Box::new(TooSlow(why)) };
        match tokio::time::timeout(idle, body.next()).await {
            Err(_) => Some((
                Err(slow(format!(
                    "the upload stalled: no data for {} s",
                    idle.as_secs()
                ))),
                (body, received, true),
            )),
            Ok(None) => None,
            Ok(Some(Err(e))) => Some((Err(e.into()), (body, received, true))),
            Ok(Some(Ok(chunk))) => {
                received = received.saturating_add(chunk.len() as u64);
                let elapsed = started.elapsed();
                let floor = min_rate.saturating_mul(elapsed.as_secs());
                if elapsed > grace && received < floor {
                    let why = format!(
                        "the upload is too slow: {received} bytes in {} s, under {} a second",
                        elapsed.as_secs(),
                        human_size(min_rate)
                    );
                    return Some((Err(slow(why)), (body, received, true)));
                }
                Some((Ok(chunk), (body, received, false)))
            }
        }
    })
}

/// What [`HeaderBudget`] ends the body with.
#[derive(Debug)]
struct PartHeadersTooLong;

impl std::fmt::Display for PartHeadersTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "part headers or preamble longer than {} KiB",
            MAX_PART_HEADERS / 1024
        )
    }
}

impl std::error::Error for PartHeadersTooLong {}

/// Where [`HeaderBudget`] is in the multipart framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Before the first `--boundary`.
    Preamble,
    /// Just after a `--boundary`: `--` ends the body, else padding and CRLF open a part.
    AfterDelimiter,
    /// A part's header lines, up to the blank line.
    Headers,
    /// A part's content, up to the next `CRLF--boundary`.
    Content,
    /// The end (or a framing error the parser reports itself): nothing more to watch.
    Done,
    /// A preamble or header block was too long.
    Overflow,
}

/// Follows the raw body's multipart framing beside the parser (the same delimiters `multer`
/// looks for), counting the preamble and each part's header block, so a body whose preamble or
/// part headers pass [`MAX_PART_HEADERS`] is cut off there instead of being buffered up to the
/// request limit. Content is only scanned for the next delimiter, never held.
#[derive(Debug)]
struct HeaderBudget {
    /// `--boundary`, which ends the preamble.
    first: Finder<'static>,
    /// `CRLF--boundary`, which ends a part's content.
    delimiter: Finder<'static>,
    framing: Framing,
    /// The tail of the last chunk that may be the start of what is looked for (shorter than
    /// the delimiter, or, in a preamble or header block, than the budget).
    carry: Vec<u8>,
    /// Bytes of the current preamble or header block.
    counted: usize,
}

impl HeaderBudget {
    fn new(boundary: &str) -> Self {
        Self {
            first: Finder::new(format!("--{boundary}").as_bytes()).into_owned(),
            delimiter: Finder::new(format!("\r\n--{boundary}").as_bytes()).into_owned(),
            framing: Framing::Preamble,
            carry: Vec::new(),
            counted: 0,
        }
    }

    /// Follows the next chunk of the body; false once a preamble or header block is too long.
    /// Content, nearly every byte of an upload, is searched in place: only the few bytes held
    /// from the last chunk are joined with the start of this one.
    fn follow(&mut self, chunk: &[u8]) -> bool {
        if matches!(self.framing, Framing::Done | Framing::Overflow) {
            return self.framing == Framing::Done;
        }
        let joined: Vec<u8>;
        let mut rest = chunk;
        let reach = self.delimiter.needle().len() - 1;
        if self.framing == Framing::Content && !self.carry.is_empty() && chunk.len() >= reach {
            // A delimiter begun in the held bytes ends within this chunk's first `reach` bytes;
            // one that begins in the chunk is found by the search in place below.
            let mut window = std::mem::take(&mut self.carry);
            let held = window.len();
            window.extend_from_slice(chunk.get(..reach).unwrap_or_default());
            if let Some(at) = self.delimiter.find(&window) {
                rest = chunk.get(at + reach + 1 - held..).unwrap_or_default();
                self.framing = Framing::AfterDelimiter;
                self.counted = 0;
            }
            window.clear();
            self.carry = window;
        } else if !self.carry.is_empty() {
            // Short chunks, and the framing between contents (bounded by the budget).
            joined = [self.carry.as_slice(), chunk].concat();
            self.carry.clear();
            rest = &joined;
        }
        loop {
            match self.framing {
                Framing::Done => return true,
                Framing::Overflow => return false,
                Framing::Preamble => match self.first.find(rest) {
                    Some(at) => {
                        self.counted += at;
                        if !self.within_budget() {
                            return false;
                        }
                        self.counted = 0;
                        rest = rest
                            .get(at + self.first.needle().len()..)
                            .unwrap_or_default();
                        self.framing = Framing::AfterDelimiter;
                    }
                    None => return self.hold(rest, self.first.needle().len() - 1, true),
                },
                Framing::AfterDelimiter => {
                    if rest.len() < 2 {
                        return self.hold(rest, rest.len(), false);
                    }
                    if rest.starts_with(b"--") {
                        self.framing = Framing::Done;
                        continue;
                    }
                    let padding = rest
                        .iter()
                        .take_while(|b| **b == b' ' || **b == b'\t')
                        .count();
                    self.counted += padding;
                    rest = rest.get(padding..).unwrap_or_default();
                    if rest.len() < 2 {
                        return self.hold(rest, rest.len(), false);
                    }
                    if rest.starts_with(b"\r\n") {
                        rest = rest.get(2..).unwrap_or_default();
                        self.framing = Framing::Headers;
                    } else {
                        // Not multipart framing: the parser refuses the body itself.
                        self.framing = Framing::Done;
                    }
                }
                Framing::Headers => match memmem::find(rest, b"\r\n\r\n") {
                    Some(at) => {
                        self.counted += at + 4;
                        if !self.within_budget() {
                            return false;
                        }
                        rest = rest.get(at + 4..).unwrap_or_default();
                        self.framing = Framing::Content;
                    }
                    None => return self.hold(rest, 3, true),
                },
                Framing::Content => match self.delimiter.find(rest) {
                    Some(at) => {
                        rest = rest
                            .get(at + self.delimiter.needle().len()..)
                            .unwrap_or_default();
                        self.counted = 0;
                        self.framing = Framing::AfterDelimiter;
                    }
                    None => return self.hold(rest, reach, false),
                },
            }
            if !self.within_budget() {
                return false;
            }
        }
    }

    /// Keeps the last `keep` bytes of `rest` for the next chunk, counts the others when asked,
    /// and says whether the budget still holds.
    fn hold(&mut self, rest: &[u8], keep: usize, count: bool) -> bool {
        let split = rest.len().saturating_sub(keep);
        let (done, kept) = rest.split_at(split);
        if count {
            self.counted += done.len();
        }
        self.carry.clear();
        self.carry.extend_from_slice(kept);
        self.within_budget()
    }

    fn within_budget(&mut self) -> bool {
        if self.counted > MAX_PART_HEADERS {
            self.framing = Framing::Overflow;
        }
        self.framing != Framing::Overflow
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
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY_LEN {
        return Err(bad_request(format!(
            "the multipart boundary is empty or longer than {MAX_BOUNDARY_LEN} characters"
        )));
    }
    let mut budget = HeaderBudget::new(&boundary);
    let body = paced(body, policy);
    let body = body.map(move |chunk| -> Result<Bytes, storage_core::BoxError> {
        let chunk = chunk?;
        if budget.follow(&chunk) {
            Ok(chunk)
        } else {
            Err(Box::new(PartHeadersTooLong))
        }
    });
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
    // Bounded by the request size limit and `max_parts`.
    let mut parts = 0usize;
    let mut text_total = 0usize;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, policy))?
    {
        parts += 1;
        if parts > policy.max_parts {
            return Err(bad_request(format!(
                "more than {} in one request",
                counted(policy.max_parts, "part")
            )));
        }
        let field_name = field.name().unwrap_or_default().to_owned();
        let wanted = policy
            .field
            .as_ref()
            .is_none_or(|wanted| *wanted == field_name);
        let file_name = field.file_name().map(str::to_owned);
        let is_file = file_name.is_some() || declares_file_name(field.headers());
        if !wanted && is_file {
            // A file for another field: not stored, whatever its name.
            while field
                .chunk()
                .await
                .map_err(|e| multipart_error(e, policy))?
                .is_some()
            {}
            continue;
        }
        let Some(client_name) = file_name else {
            if is_file {
                // multer drops a file name it cannot read, which would make a file a text
                // field: the client would see a success with nothing stored.
                return Err(bad_request(format!(
                    "the file name of part '{field_name}' could not be read: send it as UTF-8 \
                     text in a quoted filename=\"...\" parameter"
                )));
            }
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
                if text_total + text.len() + chunk.len() > MAX_TEXT_TOTAL {
                    return Err(Error::TooLarge {
                        limit: MAX_TEXT_TOTAL as u64,
                    });
                }
                text.extend_from_slice(&chunk);
            }
            text_total += text.len();
            let value = String::from_utf8(text.to_vec())
                .map_err(|_| bad_request(format!("field '{field_name}' is not UTF-8")))?;
            upload.fields.push((field_name, value));
            continue;
        };
        if upload.files.len() >= policy.max_files {
            return Err(bad_request(format!(
                "more than {} in one request",
                counted(policy.max_files, "file")
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

    // With a type rule, the name says what the bytes are: a PNG sent as `me.html` is stored as
    // `me.png`, so a server or CDN that goes by the extension never serves it as a page.
    let mut save = policy.save.clone();
    if policy.image.is_some() || policy.allowed_types.is_some() {
        save.type_extension = Some(content_type.clone());
    }

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
    let stored = storage.save_with(&client_filename, content, &save);
    let (meta, ()) = futures::join!(stored, pump);
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

/// `1 file`, `2 files`.
fn counted(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// A size for people: `1 MiB`, `1.5 GiB`, `512 B` (binary units, by the `bytesize` crate).
pub fn human_size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// Why an upload was refused, as a sentence a person can act on: a limit in binary units, what
/// was found and what is accepted, and nothing of the backend for a fault on the server's side.
/// For pages and messages shown to users; [`error_response`](crate::error_response) stays the
/// answer for programs.
pub fn refusal_message(error: &Error) -> String {
    match error {
        Error::TooLarge { limit } => {
            format!("the upload is larger than the {} limit", human_size(*limit))
        }
        Error::UnsupportedType { reason } => reason.clone(),
        Error::BadRequest { reason } => format!("the upload could not be read ({reason})"),
        Error::InvalidName { .. } | Error::SuspiciousPath { .. } => {
            format!("the file name is not acceptable ({error})")
        }
        // Trying again will not help: this storage cannot do what was asked.
        Error::NotSupported { operation, .. } => {
            format!("this storage cannot do that ({operation})")
        }
        other if crate::status_for(other).is_server_error() => {
            "the storage is unavailable, try again later".to_owned()
        }
        other => other.to_string(),
    }
}

/// Types without a magic number, which sniffing cannot confirm or refute.
fn is_textual(content_type: &str) -> bool {
    let essence = essence(content_type);
    essence.starts_with("text/")
        || matches!(essence.as_str(), "application/json" | "application/csv")
}

/// The name a file field would be stored under before its content is seen, for handlers that
/// want to check it first; a free alternative is taken when it is in use, and with an image
/// rule or an allow-list the extension becomes that of the type the bytes show (`me.html`
/// holding a PNG is stored as `me.png`).
pub fn upload_name(client_filename: &str, policy: &UploadPolicy) -> Result<Name, Error> {
    let safe = sanitize_upload_filename(client_filename).ok_or_else(|| Error::InvalidName {
        name: client_filename.escape_debug().to_string(),
        reason: "no usable file name".to_owned(),
    })?;
    policy.save.generate_name(&safe)
}
