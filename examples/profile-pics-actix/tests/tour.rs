//! The profile-pictures walk through the real `profile-pics-actix` binary, on SQLite and on
//! PostgreSQL.

#[tokio::test]
async fn tour_on_sqlite_and_postgres() -> Result<(), String> {
    profile_pics::tour::tour_binary(env!("CARGO_BIN_EXE_profile-pics-actix")).await
}
