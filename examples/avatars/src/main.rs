//! Run with: cargo run -p avatars
//!
//! User avatars on axum (see the library's docs): `STORAGE_URL` (default `sqlite://avatars.db`)
//! holds the app's `users` table and the pictures, `SECRET` signs the pictures' URLs, `ADDR`
//! (default `127.0.0.1:8000`) is where it listens. Try:
//!
//! ```text
//! curl -X POST -H 'content-type: application/json' -d '{"name":"ada"}' http://127.0.0.1:8000/users
//! curl -X PUT -H 'x-user-id: 1' -F avatar=@me.png http://127.0.0.1:8000/me/avatar
//! curl http://127.0.0.1:8000/users/1
//! ```

// An example program says where it listens.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("STORAGE_URL").unwrap_or_else(|_| "sqlite://avatars.db".to_owned());
    let secret = std::env::var("SECRET").unwrap_or_else(|_| "change me".to_owned());
    let addr: SocketAddr = std::env::var("ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8000".to_owned())
        .parse()?;
    let app = avatars::App::open(&url, &secret).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("avatars on http://{}", listener.local_addr()?);
    axum::serve(listener, avatars::router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
