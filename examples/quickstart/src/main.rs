//! Run with: cargo run -p quickstart -- [STORAGE_URL]
//!
//! Saves a few files the way a Django app would into a storage (default `sqlite://media.db`, a
//! SQLite file in the working directory; also `file://media`, `postgres://...` with the
//! `postgres` feature of storage-diesel, ...), then lists what is stored with sizes and URLs. Run
//! it twice to see Django's collision rule pick new names instead of overwriting.
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use storage_core::{Result, SaveOptions, Storage, StorageExt, UploadTo, UploadedFile, Visibility};
use storage_diesel::{connect_url, DatabaseOptions, DEFAULT_STORAGE_URL};

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_STORAGE_URL.to_owned());
    // Public by default here, so the listing can show plain URLs (the library's default is private).
    let options = DatabaseOptions::new()
        .migrate_on_connect(true)
        .default_visibility(Visibility::Public);
    let opened = connect_url(&url, options).await?;
    let storage: Arc<dyn Storage> = opened.storage();
    println!("storing in {url} (backend: {})", storage.backend_name());

    // A name as a user typed it: cleaned with Django's get_valid_name.
    let portrait = storage
        .save(
            "john's portrait in 2004.jpg",
            b"not really a jpeg".as_slice(),
        )
        .await?;
    println!(
        "saved  {:<45} (from \"john's portrait in 2004.jpg\")",
        portrait.name
    );

    // A client-supplied upload name: cut to a safe basename first.
    let mut upload = UploadedFile::new(Some("../../etc/hax0rd.txt"), Some("text/plain"), None);
    upload.write("uploaded bytes\n".into()).await?;
    let dated = SaveOptions::new().upload_to(UploadTo::template("uploads/%Y/%m/"));
    let client_name = upload.name().unwrap_or("upload").to_owned();
    let uploaded = storage.save_with(&client_name, upload, &dated).await?;
    println!(
        "saved  {:<45} (from \"../../etc/hax0rd.txt\")",
        uploaded.name
    );

    // The same name again: a random suffix before all extensions, never an overwrite.
    let first = storage.save("backup.tar.gz", b"v1".as_slice()).await?;
    let second = storage.save("backup.tar.gz", b"v2".as_slice()).await?;
    println!("saved  {:<45} then {}", first.name, second.name);

    // Refused before the storage is touched.
    for hostile in ["../outside.txt", "/etc/passwd", "C:\\Windows\\win.ini"] {
        let refused = storage
            .save_with(
                hostile,
                b"x".as_slice(),
                &SaveOptions::new().keep_name(true),
            )
            .await;
        if let Err(e) = refused {
            println!("refused {hostile:<44} {e}");
        }
    }

    println!();
    list(storage.as_ref(), None, 0).await?;
    Ok(())
}

async fn list(storage: &dyn Storage, dir: Option<&storage_core::Name>, depth: usize) -> Result<()> {
    let listing = storage.listdir(dir).await?;
    let prefix = dir.map(|d| format!("{d}/")).unwrap_or_default();
    for file in &listing.files {
        let name = storage_core::Name::new(format!("{prefix}{file}"))?;
        let meta = storage.metadata(&name).await?;
        println!(
            "{:indent$}{file:<40} {:>6} bytes  {}",
            "",
            meta.size,
            storage.url(&name, None).await?,
            indent = depth * 2
        );
    }
    for sub in &listing.dirs {
        println!("{:indent$}{sub}/", "", indent = depth * 2);
        let sub = storage_core::Name::new(format!("{prefix}{sub}"))?;
        Box::pin(list(storage, Some(&sub), depth + 1)).await?;
    }
    Ok(())
}
