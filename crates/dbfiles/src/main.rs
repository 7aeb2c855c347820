//! `dbfiles`: files kept in your database, from the shell.
//!
//! ```text
//! dbfiles [--storage URL] migrate
//! dbfiles put LOCAL [NAME] [--overwrite] [--private|--public] [--content-type TYPE] [--keep-name]
//! dbfiles get NAME [LOCAL|-]
//! dbfiles ls [DIR] [--long]
//! dbfiles stat NAME [--json]
//! dbfiles rm NAME
//! dbfiles url NAME [--expires SECONDS]
//! dbfiles load DIR | dump DIR | rehash [NAME...] | migrate-layout --from URL --to URL
//! dbfiles references [add|forget TABLE.COLUMN...] [--database URL]
//! dbfiles cleanup [--reference TABLE.COLUMN...] [--older-than SECS] [--dry-run] [--database URL]
//! dbfiles sweep [--pending-older-than SECS] [--retired-older-than SECS]
//! dbfiles serve [--addr 127.0.0.1:8000] [--framework axum|actix|rocket] [--prefix /media/]
//!               [--max-upload BYTES]
//! ```
//!
//! The storage URL comes from `--storage`, else `DBFILES_STORAGE`, else `sqlite://media.db`:
//! `sqlite://PATH`, `postgres://...`, `mysql://...` (with the `postgres` / `mysql` features),
//! `file://DIR`, `memory:`; a database URL may add `?layout=binary-database-files` or
//! `?layout=table&table=T&name_column=N&blob_column=B&size_column=S` to share a Django app's
//! table. `--mirror DIR` keeps a copy of public files on disk, `--media-url` and
//! `--absolute-url` choose the URLs `url` prints. Errors are one line on stderr and a non-zero
//! exit status.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use futures::StreamExt;
use storage_core::{
    reader_stream, ByteStream, Error, FileMeta, Name, Result, SaveOptions, Storage, StorageExt,
    Visibility,
};
use storage_diesel::{
    connect_url, AnyStorage, DatabaseOptions, FileReferences, OrphanCleanup, ReferenceSource,
    DEFAULT_STORAGE_URL,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Chunk size for reading local files and stdin.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "dbfiles",
    version,
    about = "Files kept in your database, from the shell"
)]
struct Cli {
    /// Where files are stored: sqlite://PATH, postgres://..., mysql://..., file://DIR or memory:
    #[arg(long, global = true, env = "DBFILES_STORAGE", default_value = DEFAULT_STORAGE_URL)]
    storage: String,

    /// Secret that signs URLs of private files (`url`) and checks them (`serve`).
    #[arg(long, global = true, env = "DBFILES_SECRET", hide_env_values = true)]
    secret: Option<String>,

    /// Older secrets whose signatures are still accepted while secrets rotate (comma-separated).
    #[arg(
        long = "old-secret",
        global = true,
        env = "DBFILES_OLD_SECRETS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    old_secrets: Vec<String>,

    /// Keep a copy of every public file under this media root (refreshed when its checksum
    /// changes), for nginx or a CDN to serve; never writes outside it.
    #[arg(long, global = true, env = "DBFILES_MIRROR")]
    mirror: Option<String>,

    /// Give public files URLs under this media URL (where the mirror is served) instead of the
    /// serving route.
    #[arg(long, global = true, env = "DBFILES_MEDIA_URL")]
    media_url: Option<String>,

    /// Put this before relative URLs, such as https://files.example.com.
    #[arg(long, global = true, env = "DBFILES_ABSOLUTE_URL")]
    absolute_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or update the storage tables.
    Migrate,
    /// Store a local file (or stdin with `-`); prints the stored name.
    Put {
        /// The local file, or `-` for stdin.
        local: String,
        /// The name to store under (default: the local file's name). A taken name gets Django's
        /// random suffix unless --overwrite is given.
        name: Option<String>,
        /// Replace a stored file of the same name.
        #[arg(long)]
        overwrite: bool,
        /// Store as private (served only with a signed URL); the default on databases.
        #[arg(long, conflicts_with = "public")]
        private: bool,
        /// Store as public (served to anyone with the URL).
        #[arg(long)]
        public: bool,
        /// The media type to record (default: guessed from the name).
        #[arg(long)]
        content_type: Option<String>,
        /// Keep the name as given instead of cleaning it with Django's rules.
        #[arg(long)]
        keep_name: bool,
    },
    /// Write a stored file to a local file, or to stdout.
    Get {
        /// The stored name.
        name: String,
        /// The local file, or `-` (the default) for stdout.
        local: Option<String>,
    },
    /// List a directory.
    Ls {
        /// The directory (default: the top).
        dir: Option<String>,
        /// Show size, modification time and type.
        #[arg(long, short = 'l')]
        long: bool,
    },
    /// Print a file's URL: plain for a public file, signed (with --secret) for a private one.
    Url {
        /// The stored name.
        name: String,
        /// How long a signed URL stays valid, in seconds.
        #[arg(long, default_value_t = 3600)]
        expires: u64,
    },
    /// Show a stored file's metadata.
    Stat {
        /// The stored name.
        name: String,
        /// Print JSON (keys: name, size, content_type, sha256, created, modified, public).
        #[arg(long)]
        json: bool,
    },
    /// Delete a stored file.
    Rm {
        /// The stored name.
        name: String,
    },
    /// Serve the storage over HTTP with an upload page at `/`, until Ctrl-C.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8000")]
        addr: std::net::SocketAddr,
        /// Web framework: axum, actix or rocket (same behaviour).
        #[arg(long, default_value = "axum")]
        framework: dbfiles::server::Framework,
        /// Where stored files are served.
        #[arg(long, default_value = "/media/")]
        prefix: String,
        /// Largest upload, in bytes.
        #[arg(long, default_value_t = 100 << 20)]
        max_upload: u64,
    },
    /// Import a media directory, keeping relative names; files already stored unchanged are
    /// skipped, so an interrupted load can be run again.
    Load {
        /// The directory.
        dir: String,
    },
    /// Export every stored file into a directory; when run again only stale files are written.
    Dump {
        /// The directory (created if missing).
        dir: String,
    },
    /// Copy every file from one storage to another, checksums verified (a directory into
    /// PostgreSQL, SQLite into MySQL, ...). Safe to run again.
    MigrateLayout {
        /// The storage to copy from.
        #[arg(long)]
        from: String,
        /// The storage to copy to (migrated first).
        #[arg(long)]
        to: String,
    },
    /// List the columns declared to hold stored names (a model's file fields), or add or forget
    /// some; cleanup always honours them.
    References {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<ReferencesAction>,
        /// The database holding the referencing rows (default: the storage's own).
        #[arg(long)]
        database: Option<String>,
    },
    /// Delete stored files that no referencing column names: the declared columns (see
    /// `references`) and any given here.
    Cleanup {
        /// Another column holding stored names, as TABLE.COLUMN.
        #[arg(long = "reference")]
        references: Vec<String>,
        /// Leave files modified less than this many seconds ago (their row may not be saved
        /// yet).
        #[arg(long, default_value_t = 3600)]
        older_than: u64,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// The database holding the referencing rows (default: the storage's own).
        #[arg(long)]
        database: Option<String>,
    },
    /// Re-read stored files and report those that no longer match their recorded checksum.
    Rehash {
        /// The files to check (default: all).
        names: Vec<String>,
    },
    /// Remove abandoned uploads and retired versions.
    Sweep {
        /// Remove uploads started longer ago than this many seconds and never finished.
        #[arg(long, default_value_t = 24 * 3600)]
        pending_older_than: u64,
        /// Remove overwritten or deleted versions older than this many seconds.
        #[arg(long, default_value_t = 3600)]
        retired_older_than: u64,
    },
}

/// What `dbfiles references` does.
#[derive(Debug, Subcommand)]
enum ReferencesAction {
    /// Declare columns.
    Add {
        /// Columns as TABLE.COLUMN.
        #[arg(required = true)]
        columns: Vec<String>,
    },
    /// Remove declarations.
    Forget {
        /// Columns as TABLE.COLUMN.
        #[arg(required = true)]
        columns: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// One line on stderr: the error, and for backend failures the first cause.
#[allow(clippy::print_stderr)]
fn report(e: &Error) {
    let cause = match e {
        Error::Backend {
            source: Some(source),
            ..
        } => {
            let text = source.to_string();
            let first_line = text.lines().next().unwrap_or_default().trim().to_owned();
            if first_line.is_empty() {
                String::new()
            } else {
                format!(": {first_line}")
            }
        }
        _ => String::new(),
    };
    eprintln!("dbfiles: error: {e}{cause}");
}

async fn run(cli: Cli) -> Result<()> {
    // The CLI owns an embedded SQLite file the way `sqlite3` does: it creates the tables on
    // first use. Server databases are migrated explicitly (`dbfiles migrate`, a deploy step).
    let embedded = cli.storage.starts_with("sqlite:");
    let signer = cli.secret.as_ref().map(|secret| {
        storage_core::UrlSigner::new(secret)
            .with_previous_secrets(cli.old_secrets.iter().filter(|s| !s.is_empty()))
    });
    let mut options = DatabaseOptions::new()
        .pool_size(4)
        .connect_timeout(Duration::from_secs(10))
        .migrate_on_connect(embedded || matches!(cli.command, Command::Migrate));
    if let Some(signer) = &signer {
        options = options.url_signer(signer.clone());
    }
    if let Some(media_url) = &cli.media_url {
        options = options.url_style(storage_core::UrlStyle::MediaUrl(media_url.clone()));
    }
    options = options.absolute_base_url(cli.absolute_url.as_deref());
    let any = connect_url(&cli.storage, options).await?;
    let storage = match &cli.mirror {
        Some(root) => std::sync::Arc::new(storage_core::MirroredStorage::new(any.storage(), root)?)
            as std::sync::Arc<dyn Storage>,
        None => any.storage(),
    };
    match cli.command {
        Command::Migrate => migrate(&any).await,
        Command::Put {
            local,
            name,
            overwrite,
            private,
            public,
            content_type,
            keep_name,
        } => {
            let name = match name {
                Some(name) => name,
                None if local == "-" => {
                    return Err(Error::InvalidName {
                        name: "-".to_owned(),
                        reason: "give a NAME when reading from stdin".to_owned(),
                    })
                }
                None => std::path::Path::new(&local)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            let mut options = SaveOptions::new().overwrite(overwrite).keep_name(keep_name);
            if private {
                options = options.visibility(Visibility::Private);
            }
            if public {
                options = options.visibility(Visibility::Public);
            }
            if let Some(content_type) = content_type {
                options = options.content_type(content_type);
            }
            let meta = storage
                .save_with(&name, open_local(&local).await?, &options)
                .await?;
            println_out(meta.name.as_str()).await
        }
        Command::Get { name, local } => {
            get(storage.as_ref(), &name, local.as_deref().unwrap_or("-")).await
        }
        Command::Ls { dir, long } => ls(storage.as_ref(), dir.as_deref(), long).await,
        Command::Url { name, expires } => {
            let url = storage
                .url(&Name::new(&name)?, Some(Duration::from_secs(expires)))
                .await?;
            println_out(&url).await
        }
        Command::Stat { name, json } => {
            let meta = storage.metadata(&Name::new(&name)?).await?;
            println_out(&if json {
                stat_json(&meta)
            } else {
                stat_text(&meta)
            })
            .await
        }
        Command::Rm { name } => {
            let name = Name::new(&name)?;
            if storage.delete(&name).await? {
                Ok(())
            } else {
                Err(Error::NotFound {
                    name: name.to_string(),
                })
            }
        }
        Command::Serve {
            addr,
            framework,
            prefix,
            max_upload,
        } => {
            // Without a configured secret, a secret for this process only: the page's links to
            // private files work, and nothing signed outlives the server.
            let signer =
                signer.unwrap_or_else(|| storage_core::UrlSigner::new(rand::random::<[u8; 32]>()));
            let serve_config = storage_http::ServeConfig::new().signer(signer);
            let options = dbfiles::server::ServerOptions::new(addr)
                .serve_config(serve_config)
                .prefix(&prefix)
                .upload_policy(
                    storage_http::UploadPolicy::new()
                        .max_file_size(max_upload)
                        .max_request_size(max_upload.saturating_add(1 << 20)),
                );
            let server = dbfiles::server::start(framework, storage, options).await?;
            println_out(&format!(
                "serving {} on http://{} with {framework}; files under {}; Ctrl-C stops",
                storage_diesel::redact_url(&cli.storage),
                server.addr(),
                prefix
            ))
            .await?;
            let _ = tokio::signal::ctrl_c().await;
            server.stop().await;
            Ok(())
        }
        Command::Load { dir } => {
            if !std::path::Path::new(&dir).is_dir() {
                return Err(Error::NotFound { name: dir });
            }
            let source = storage_core::FileSystemStorage::new(&dir)?;
            // Entries no stored name can hold are failures, said one by one, never skipped.
            let refused = dbfiles::maintenance::report_unloadable(&source).await?;
            let mut report =
                dbfiles::maintenance::copy_all(&source, storage.as_ref(), "load").await?;
            report.failed += refused;
            finish(&format!("load: {report}"), report.failed == 0).await
        }
        Command::Dump { dir } => {
            let target = storage_core::FileSystemStorage::new(&dir)?;
            let report = dbfiles::maintenance::copy_all(storage.as_ref(), &target, "dump").await?;
            // The staging directory is only for writes in flight; leave no empty one behind.
            let _ = std::fs::remove_dir(target.location().join(storage_core::STAGING_DIR));
            finish(&format!("dump: {report}"), report.failed == 0).await
        }
        Command::MigrateLayout { from, to } => {
            let options = || {
                DatabaseOptions::new()
                    .pool_size(4)
                    .connect_timeout(Duration::from_secs(10))
            };
            let source = connect_url(&from, options()).await?;
            let target = connect_url(&to, options().migrate_on_connect(true)).await?;
            let report = dbfiles::maintenance::copy_all(
                source.storage().as_ref(),
                target.storage().as_ref(),
                "copy",
            )
            .await?;
            finish(&format!("migrate-layout: {report}"), report.failed == 0).await
        }
        Command::References { action, database } => {
            let rows = rows_database(database.as_deref()).await?;
            let source = rows.as_ref().unwrap_or(&any);
            match action {
                Some(ReferencesAction::Add { columns }) => {
                    source
                        .declare_references(&FileReferences::parse(columns)?)
                        .await?;
                }
                Some(ReferencesAction::Forget { columns }) => {
                    source
                        .forget_references(&FileReferences::parse(columns)?)
                        .await?;
                }
                None => {}
            }
            for column in source.declared_references().await?.iter() {
                println_out(&column.to_string()).await?;
            }
            Ok(())
        }
        Command::Cleanup {
            references,
            older_than,
            dry_run,
            database,
        } => {
            let rows = rows_database(database.as_deref()).await?;
            let source = rows.as_ref().unwrap_or(&any);
            let cleanup = OrphanCleanup::new(
                storage.as_ref(),
                source,
                &FileReferences::parse(references)?,
            )
            .await?
            .older_than(Duration::from_secs(older_than));
            let orphans = cleanup.find().await?;
            let (mut files, mut bytes) = (0u64, 0u64);
            if dry_run {
                for orphan in &orphans {
                    println_out(&format!(
                        "would delete: {} ({} bytes)",
                        orphan.name, orphan.size
                    ))
                    .await?;
                    files += 1;
                    bytes += orphan.size;
                }
            } else {
                let bar = dbfiles::maintenance::progress(orphans.len() as u64, "cleanup");
                for orphan in &orphans {
                    // Referenced, changed or gone meanwhile: kept, not counted.
                    if cleanup.delete(orphan).await? {
                        files += 1;
                        bytes += orphan.size;
                    }
                    bar.inc(1);
                }
                bar.finish_and_clear();
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            println_out(&format!(
                "cleanup: {verb} {files} unreferenced files ({bytes} bytes); columns: {}",
                cleanup.references()
            ))
            .await
        }
        Command::Rehash { names } => {
            let names = names.iter().map(Name::new).collect::<Result<Vec<_>>>()?;
            let report = dbfiles::maintenance::rehash(storage.as_ref(), names).await?;
            for name in &report.mismatched {
                println_out(&format!("mismatch: {name}")).await?;
            }
            let line = format!(
                "rehash: {} checked, {} mismatched, {} without a recorded checksum",
                report.checked,
                report.mismatched.len(),
                report.unrecorded
            );
            finish(&line, report.mismatched.is_empty()).await
        }
        Command::Sweep {
            pending_older_than,
            retired_older_than,
        } => {
            let report = any
                .sweep(
                    Duration::from_secs(pending_older_than),
                    Duration::from_secs(retired_older_than),
                )
                .await?;
            println_out(&format!("swept {} file versions", report.files)).await
        }
    }
}

/// Prints the summary line; a run with failures ends with an error (non-zero exit).
async fn finish(summary: &str, ok: bool) -> Result<()> {
    println_out(summary).await?;
    if ok {
        Ok(())
    } else {
        Err(Error::Backend {
            backend: "dbfiles",
            message: "some files failed (see above)".to_owned(),
            source: None,
        })
    }
}

/// The database named by `--database`, to read referencing rows from, when given.
async fn rows_database(url: Option<&str>) -> Result<Option<AnyStorage>> {
    match url {
        Some(url) => Ok(Some(
            connect_url(url, DatabaseOptions::new().pool_size(2)).await?,
        )),
        None => Ok(None),
    }
}

async fn migrate(any: &AnyStorage) -> Result<()> {
    // Connecting ran the migrations; a second run reports what is applied now.
    let applied = any.migrate().await?;
    let line = if applied.is_empty() {
        "storage tables are up to date".to_owned()
    } else {
        format!("applied {}", applied.join(", "))
    };
    println_out(&line).await
}

async fn open_local(local: &str) -> Result<ByteStream> {
    if local == "-" {
        return Ok(reader_stream(tokio::io::stdin(), READ_CHUNK, "stdin"));
    }
    let file = tokio::fs::File::open(local)
        .await
        .map_err(|e| local_error(local, e))?;
    Ok(reader_stream(file, READ_CHUNK, "local file"))
}

fn local_error(path: &str, e: std::io::Error) -> Error {
    Error::backend("local file", format!("cannot use '{path}'"), e)
}

async fn get(storage: &dyn Storage, name: &str, local: &str) -> Result<()> {
    let opened = storage.open(&Name::new(name)?, None).await?;
    if local == "-" {
        return match copy_out(opened.stream, &mut tokio::io::stdout()).await {
            // A closed pipe (`dbfiles get x | head`) is the reader's choice, not a failure.
            Err(Error::Backend {
                source: Some(source),
                ..
            }) if source
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
            {
                Ok(())
            }
            other => other,
        };
    }
    // Write beside the target and rename, so an interrupted get leaves no half file.
    let partial = format!("{local}.dbfiles-part");
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| local_error(local, e))?;
    let copied = copy_out(opened.stream, &mut file).await;
    let synced = match copied {
        Ok(()) => file.sync_all().await.map_err(|e| local_error(local, e)),
        Err(e) => Err(e),
    };
    drop(file);
    match synced {
        Ok(()) => tokio::fs::rename(&partial, local)
            .await
            .map_err(|e| local_error(local, e)),
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}

async fn copy_out<W: AsyncWrite + Unpin>(mut stream: ByteStream, out: &mut W) -> Result<()> {
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?)
            .await
            .map_err(|e| Error::backend("output", "write failed", e))?;
    }
    out.flush()
        .await
        .map_err(|e| Error::backend("output", "write failed", e))
}

async fn ls(storage: &dyn Storage, dir: Option<&str>, long: bool) -> Result<()> {
    let dir = match dir.map(|d| d.trim_end_matches('/')) {
        None | Some("") => None,
        Some(d) => Some(Name::new(d)?),
    };
    let listing = storage.listdir(dir.as_ref()).await?;
    let prefix = dir.as_ref().map(|d| format!("{d}/")).unwrap_or_default();
    let mut lines = Vec::new();
    for sub in &listing.dirs {
        lines.push(if long {
            format!("{:>12}  {:<20}  {:<24}  {sub}/", "-", "-", "-")
        } else {
            format!("{sub}/")
        });
    }
    for file in &listing.files {
        if long {
            let meta = storage
                .metadata(&Name::new(format!("{prefix}{file}"))?)
                .await?;
            lines.push(format!(
                "{:>12}  {:<20}  {:<24}  {file}",
                meta.size,
                rfc3339(meta.modified),
                meta.content_type.as_deref().unwrap_or("-")
            ));
        } else {
            lines.push(file.clone());
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    println_out(&lines.join("\n")).await
}

fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn stat_json(meta: &FileMeta) -> String {
    serde_json::json!({
        "name": meta.name.as_str(),
        "size": meta.size,
        "content_type": meta.content_type,
        "sha256": meta.sha256_hex(),
        "created": rfc3339(meta.created),
        "modified": rfc3339(meta.modified),
        "public": meta.visibility == Visibility::Public,
    })
    .to_string()
}

fn stat_text(meta: &FileMeta) -> String {
    [
        format!("name:         {}", meta.name),
        format!("size:         {}", meta.size),
        format!(
            "content type: {}",
            meta.content_type.as_deref().unwrap_or("-")
        ),
        format!(
            "sha256:       {}",
            meta.sha256_hex().as_deref().unwrap_or("-")
        ),
        format!("etag:         {}", meta.etag),
        format!("created:      {}", rfc3339(meta.created)),
        format!("modified:     {}", rfc3339(meta.modified)),
        format!("visibility:   {}", meta.visibility.as_str()),
    ]
    .join("\n")
}

async fn println_out(text: &str) -> Result<()> {
    let mut out = tokio::io::stdout();
    let line = format!("{text}\n");
    out.write_all(line.as_bytes())
        .await
        .and(out.flush().await)
        .map_err(|e| Error::backend("output", "write failed", e))
}
