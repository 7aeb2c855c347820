//! Workspace integration tests: every framework adapter over real loopback HTTP, driven by one
//! request matrix (see `tests/matrix.rs`).
