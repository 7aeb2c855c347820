//! What OpenDAL's FTP service cannot do, on an FTP connection of our own (suppaftp, the client
//! that service is built on): uploads straight into the staged name (OpenDAL's FTP writer goes
//! through a temporary name of its own in the working directory and cannot abort), and the
//! rename that publishes them (RNFR/RNTO).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use storage_core::{ByteStream, ContentHasher, Error, Result};
use suppaftp::tokio::AsyncRustlsFtpStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Logged-in connections kept for the next command (each new one costs a connect, a login, a
/// TYPE and a CWD); at most this many wait.
const MAX_IDLE: usize = 4;

/// How to log in to the FTP server, and the idle connections of this storage.
#[derive(Clone)]
pub(crate) struct FtpLogin {
    /// `host:port`
    pub(crate) address: String,
    pub(crate) user: String,
    pub(crate) password: String,
    /// The storage's directory on the server, `/` for the login directory's root.
    pub(crate) root: String,
    idle: Arc<Mutex<Vec<AsyncRustlsFtpStream>>>,
}

impl fmt::Debug for FtpLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FtpLogin")
            .field("address", &self.address)
            .field("user", &self.user)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn ftp_error(doing: &str, name: &str, e: suppaftp::FtpError) -> Error {
    Error::backend("ftp", format!("{doing} '{name}'"), e)
}

impl FtpLogin {
    pub(crate) fn new(address: String, user: String, password: String, root: String) -> Self {
        Self {
            address,
            user,
            password,
            root,
            idle: Arc::default(),
        }
    }

    /// A logged-in connection in the root directory: an idle one that still answers, else a
    /// new one. Commands leave the working directory alone, so a connection returned with
    /// [`Self::give_back`] is still in the root.
    async fn session(&self) -> Result<AsyncRustlsFtpStream> {
        // Bounded: the pool holds at most MAX_IDLE connections.
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match idle {
                Some(mut ftp) => {
                    if ftp.noop().await.is_ok() {
                        return Ok(ftp);
                    }
                }
                None => return self.connect().await,
            }
        }
    }

    /// Keeps a connection whose last command completed, for the next one.
    fn give_back(&self, ftp: AsyncRustlsFtpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(ftp);
        }
    }

    async fn connect(&self) -> Result<AsyncRustlsFtpStream> {
        let mut ftp = AsyncRustlsFtpStream::connect(self.address.as_str())
            .await
            .map_err(|e| ftp_error("cannot connect for", &self.root, e))?;
        if !self.user.is_empty() {
            ftp.login(self.user.as_str(), self.password.as_str())
                .await
                .map_err(|e| ftp_error("cannot log in for", &self.root, e))?;
        }
        // Binary: ASCII mode rewrites line ends and refuses offsets.
        ftp.transfer_type(suppaftp::types::FileType::Binary)
            .await
            .map_err(|e| ftp_error("cannot switch to binary for", &self.root, e))?;
        if ftp.cwd(self.root.as_str()).await.is_err() {
            // A new storage: its directory is created on first use, as OpenDAL does.
            let mut dir = String::new();
            for part in self.root.split('/').filter(|p| !p.is_empty()) {
                dir.push('/');
                dir.push_str(part);
                let _ = ftp.mkdir(dir.as_str()).await;
            }
            ftp.cwd(self.root.as_str())
                .await
                .map_err(|e| ftp_error("cannot enter", &self.root, e))?;
        }
        Ok(ftp)
    }

    /// Renames `from` to `to` (paths under the root), creating `to`'s directories; a file
    /// already at `to` is replaced (the server's rename).
    pub(crate) async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let mut ftp = self.session().await?;
        let mut dir = String::new();
        let parents: Vec<&str> = to.split('/').collect();
        for part in parents.iter().take(parents.len().saturating_sub(1)) {
            dir.push_str(part);
            dir.push('/');
            // An existing directory is an error here; the rename reports a real failure.
            let _ = ftp.mkdir(dir.as_str()).await;
        }
        ftp.rename(from, to)
            .await
            .map_err(|e| ftp_error("cannot publish", to, e))?;
        self.give_back(ftp);
        Ok(())
    }

    /// Size and modification time of the file at `path`, `None` when there is none (or it is a
    /// directory). SIZE and MDTM need no data connection, and MDTM has seconds and UTC where a
    /// listing has minutes in the server's local time.
    pub(crate) async fn stat(&self, path: &str) -> Result<Option<(u64, SystemTime)>> {
        let mut ftp = self.session().await?;
        let unavailable = |e: &suppaftp::FtpError| {
            matches!(e, suppaftp::FtpError::UnexpectedResponse(r)
                if r.status == suppaftp::Status::FileUnavailable)
        };
        let size = match ftp.size(path).await {
            Ok(size) => size as u64,
            Err(e) if unavailable(&e) => {
                self.give_back(ftp);
                return Ok(None);
            }
            Err(e) => return Err(ftp_error("cannot read the size of", path, e)),
        };
        let modified = match ftp.mdtm(path).await {
            Ok(time) => time.and_utc(),
            Err(e) if unavailable(&e) => {
                self.give_back(ftp);
                return Ok(None);
            }
            Err(e) => return Err(ftp_error("cannot read the time of", path, e)),
        };
        self.give_back(ftp);
        let modified = u64::try_from(modified.timestamp())
            .map_or(UNIX_EPOCH, |secs| UNIX_EPOCH + Duration::from_secs(secs));
        Ok(Some((size, modified)))
    }

    /// `len` bytes of `path` from `start`. The connection goes with the stream and closes with
    /// it, never back to the pool (OpenDAL's FTP reader returns its pooled connection with the
    /// transfer unfinished, which breaks the next command on it).
    pub(crate) async fn read(&self, path: &str, start: u64, len: u64) -> Result<ByteStream> {
        let mut ftp = self.session().await?;
        if start > 0 {
            let offset =
                usize::try_from(start).map_err(|_| Error::InvalidRange { start, size: start })?;
            ftp.resume_transfer(offset)
                .await
                .map_err(|e| ftp_error("cannot seek in", path, e))?;
        }
        let data = match ftp.retr_as_stream(path).await {
            Ok(data) => data,
            Err(suppaftp::FtpError::UnexpectedResponse(response))
                if response.status == suppaftp::Status::FileUnavailable =>
            {
                return Err(Error::NotFound {
                    name: path.to_owned(),
                })
            }
            Err(e) => return Err(ftp_error("cannot read", path, e)),
        };
        let path = path.to_owned();
        let state = (ftp, data, len, vec![0u8; 64 * 1024]);
        let stream = futures::stream::try_unfold(state, move |(ftp, mut data, left, mut buf)| {
            let path = path.clone();
            async move {
                if left == 0 {
                    return Ok(None);
                }
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = data
                    .read(buf.get_mut(..want).unwrap_or_default())
                    .await
                    .map_err(|e| Error::backend("ftp", format!("cannot read '{path}'"), e))?;
                if n == 0 {
                    return Err(Error::backend(
                        "ftp",
                        format!("'{path}' ended early"),
                        std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                    ));
                }
                let chunk = bytes::Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                Ok(Some((chunk, (ftp, data, left - n as u64, buf))))
            }
        });
        Ok(Box::pin(stream))
    }

    /// Streams `content` into `path` (under the root; its directory is created), hashing it.
    /// A failing content stream ends the transfer, removes the partial file and is returned as
    /// it is.
    pub(crate) async fn upload(
        &self,
        path: &str,
        mut content: ByteStream,
    ) -> Result<([u8; 32], u64)> {
        let mut ftp = self.session().await?;
        if let Some((dir, _)) = path.rsplit_once('/') {
            let _ = ftp.mkdir(dir).await;
        }
        let mut data = ftp
            .put_with_stream(path)
            .await
            .map_err(|e| ftp_error("cannot write", path, e))?;
        let mut hasher = ContentHasher::new();
        let mut failure = None;
        while let Some(chunk) = content.next().await {
            match chunk {
                Ok(chunk) => {
                    hasher.update(&chunk);
                    if let Err(e) = data.write_all(&chunk).await {
                        failure = Some(Error::backend("ftp", format!("cannot write '{path}'"), e));
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Closing the data connection is how FTP ends a transfer; the server's answer must be
        // read before the next command.
        let finished = ftp
            .finalize_put_stream(data)
            .await
            .map_err(|e| ftp_error("cannot finish writing", path, e));
        let failure = failure.or(finished.err());
        if let Some(e) = failure {
            let _ = ftp.rm(path).await;
            return Err(e);
        }
        self.give_back(ftp);
        let (sha256, size) = hasher.finish();
        Ok((sha256, size))
    }
}
