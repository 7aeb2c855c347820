//! Run with: cargo run --release -p http-matrix --bin servedir -- DIR ADDR
//!
//! tower-http's `ServeDir` serving a directory under `/media`, with `TCP_NODELAY`: the baseline
//! `scripts/bench-http` measures the adapters against.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(addr)) = (args.next(), args.next()) else {
        eprintln!("usage: servedir DIR ADDR");
        return ExitCode::from(2);
    };
    let app = axum::Router::new().nest_service("/media", tower_http::services::ServeDir::new(dir));
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("servedir: cannot bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("servedir: {e}");
            ExitCode::FAILURE
        }
    }
}
