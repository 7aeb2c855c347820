//! The `dbfiles` command's library: the demo server behind `dbfiles serve`, the same app on
//! axum, actix-web and rocket. The command line itself is `src/main.rs`.
//!
//! ```no_run
//! # async fn run() -> storage_core::Result<()> {
//! use std::sync::Arc;
//! use dbfiles::server::{start, Framework, ServerOptions};
//! let storage: Arc<dyn storage_core::Storage> = Arc::new(storage_core::InMemoryStorage::new());
//! let server = start(Framework::Axum, storage, ServerOptions::new("127.0.0.1:8000".parse().unwrap())).await?;
//! println!("serving on http://{}", server.addr());
//! server.stop().await;
//! # Ok(()) }
//! ```

pub mod maintenance;
pub mod server;
