//! The `dbfiles` command's library: the demo server behind `dbfiles serve`, the same app on
//! axum, actix-web and rocket. The command line itself is `src/main.rs`.
//!
//! ```
//! # async fn run() -> storage_core::Result<()> {
//! use std::sync::Arc;
//! use dbfiles::server::{start, Framework, ServerOptions};
//! let storage: Arc<dyn storage_core::Storage> = Arc::new(storage_core::InMemoryStorage::new());
//! // Port 0: a free port; the page is at http://{server.addr()}/.
//! let server = start(Framework::Axum, storage, ServerOptions::new("127.0.0.1:0".parse().unwrap())).await?;
//! assert!(server.addr().port() > 0);
//! server.stop().await;
//! # Ok(()) }
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```
//!
//! The guides in `docs/` are compiled here as doctests (the `guides` module, doctest builds only),
//! but for `docs/remote.md`, which `storage-opendal` compiles, where its API lives.

pub mod maintenance;
pub mod server;

/// The guides in `docs/`, compiled and run as doctests so their code stays true.
#[cfg(doctest)]
mod guides {
    #[doc = include_str!("../../../docs/getting-started.md")]
    mod getting_started {}
    #[doc = include_str!("../../../docs/configuration.md")]
    mod configuration {}
    #[doc = include_str!("../../../docs/security.md")]
    mod security {}
    #[doc = include_str!("../../../docs/scaling.md")]
    mod scaling {}
    #[doc = include_str!("../../../docs/migrating-from-django.md")]
    mod migrating_from_django {}
    #[doc = include_str!("../../../docs/http.md")]
    mod http {}
    #[cfg(feature = "postgres")]
    #[doc = include_str!("../../../docs/backends.md")]
    mod backends {}
    #[cfg(feature = "postgres")]
    #[doc = include_str!("../../../docs/django.md")]
    mod django {}
    #[doc = include_str!("../../../docs/names.md")]
    mod names {}
    #[doc = include_str!("../../../docs/fields.md")]
    mod fields {}
}
