//! Model fields on real databases: a diesel model whose columns hold stored names, saved and
//! loaded; `upload_to` layouts; image validation; orphans across two referencing tables;
//! replacing and clearing with and without deleting the old file. The same suite runs on
//! SQLite, PostgreSQL and MySQL/MariaDB.

#![allow(missing_docs)] // diesel::table! items
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, Utc};
use diesel::prelude::*;
use storage_core::{Error, StorageExt, UploadTo, Visibility};
use storage_diesel::{
    FileField, FileRef, FileReferences, ImageField, OldFile, OrphanCleanup, ReferenceSource,
};

type TestResult = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

diesel::table! {
    cars (id) {
        id -> Integer,
        make -> Text,
        photo -> Text,
        photo_width -> Nullable<Integer>,
        photo_height -> Nullable<Integer>,
        manual -> Nullable<Text>,
    }
}

diesel::table! {
    dealers (id) {
        id -> Integer,
        logo -> Text,
    }
}

/// A car row: `photo` is an image column, `manual` a nullable file column.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset, Identifiable)]
#[diesel(table_name = cars)]
struct Car {
    id: i32,
    make: String,
    photo: FileRef,
    photo_width: Option<i32>,
    photo_height: Option<i32>,
    manual: FileRef,
}

/// A database that cannot be asked which rows hold a file.
#[derive(Debug)]
struct Unreachable;

#[async_trait::async_trait]
impl ReferenceSource for Unreachable {
    async fn referenced_names(
        &self,
        _: &FileReferences,
    ) -> storage_core::Result<std::collections::HashSet<String>> {
        Err(unreachable_error())
    }

    async fn is_referenced(&self, _: &FileReferences, _: &str) -> storage_core::Result<bool> {
        Err(unreachable_error())
    }

    async fn declared_references(&self) -> storage_core::Result<FileReferences> {
        Err(unreachable_error())
    }

    async fn declare_references(&self, _: &FileReferences) -> storage_core::Result<()> {
        Err(unreachable_error())
    }

    async fn forget_references(&self, _: &FileReferences) -> storage_core::Result<usize> {
        Err(unreachable_error())
    }
}

fn unreachable_error() -> Error {
    Error::backend("test", "unreachable", std::io::Error::other("down"))
}

const DDL: [&str; 2] = [
    "CREATE TABLE cars (id INTEGER PRIMARY KEY, make VARCHAR(50) NOT NULL, \
     photo VARCHAR(100) NOT NULL, photo_width INTEGER NULL, photo_height INTEGER NULL, \
     manual VARCHAR(100) NULL)",
    "CREATE TABLE dealers (id INTEGER PRIMARY KEY, logo VARCHAR(100) NOT NULL)",
];

/// A PNG signature and IHDR chunk: what the header check reads.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(&width.to_be_bytes());
    png.extend_from_slice(&height.to_be_bytes());
    png.extend_from_slice(&[8, 2, 0, 0, 0, 0x90, 0x77, 0x53, 0xde]);
    // Some pixel data after the header, spanning several storage chunks.
    png.extend((0..200_000u32).map(|i| (i % 251) as u8));
    png
}

/// A GIF89a header.
fn gif(width: u16, height: u16) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&width.to_le_bytes());
    gif.extend_from_slice(&height.to_le_bytes());
    gif.extend_from_slice(&[0, 0, 0, b';']);
    gif
}

fn car(id: i32, make: &str, photo: FileRef) -> Car {
    Car {
        id,
        make: make.to_owned(),
        photo,
        photo_width: None,
        photo_height: None,
        manual: FileRef::empty(),
    }
}

/// One suite per connection type. `$db` makes a fresh database (or `None` to skip) as
/// `(guard, storage URL, connection URL)`.
macro_rules! model_suite {
    ($module:ident, $conn:ty, $db:expr) => {
        mod $module {
            use super::*;

            type Storage = storage_diesel::DieselStorage<$conn>;

            struct App {
                storage: Arc<Storage>,
                conn: $conn,
                raw: Box<dyn common::RawDb>,
            }

            impl App {
                async fn new() -> std::result::Result<Option<Self>, Box<dyn std::error::Error + Send + Sync>> {
                    let made: Option<(Box<dyn common::RawDb>, String, String)> = $db;
                    let Some((raw, storage_url, conn_url)) = made else {
                        return Ok(None);
                    };
                    let options = common::options()
                        .default_visibility(Visibility::Public)
                        .absolute_base_url(Some("https://cdn.example.com"));
                    let storage = Arc::new(Storage::connect(&storage_url, options).await?);
                    let mut conn = <$conn>::establish(&conn_url)?;
                    for statement in DDL {
                        diesel::sql_query(statement).execute(&mut conn)?;
                    }
                    Ok(Some(Self { storage, conn, raw }))
                }

                fn files(&self) -> i64 {
                    self.raw
                        .count("SELECT COUNT(*) AS n FROM storage_files WHERE state = 1")
                        .unwrap()
                }

                fn load(&mut self, id: i32) -> Car {
                    cars::table
                        .find(id)
                        .select(Car::as_select())
                        .first(&mut self.conn)
                        .unwrap()
                }
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn a_model_with_a_file_is_saved_and_loaded() -> TestResult {
                let Some(mut app) = App::new().await? else { return Ok(()) };
                let photo = FileField::new("cars", "photo", app.storage.clone())?
                    .upload_to(UploadTo::template("cars"))
                    .image();
                let manual = FileField::new("cars", "manual", app.storage.clone())?
                    .upload_to(UploadTo::template("manuals"));

                let image = png(191, 287);
                let saved = photo.save("chevy.png", image.clone()).await?;
                assert_eq!(saved.value.as_str(), "cars/chevy.png");
                assert_eq!((saved.width, saved.height), (191, 287));
                diesel::insert_into(cars::table)
                    .values((
                        cars::id.eq(1),
                        cars::make.eq("57 Chevy"),
                        cars::photo.eq(&saved.value),
                        saved.dimensions(cars::photo_width, cars::photo_height),
                    ))
                    .execute(&mut app.conn)?;

                let mut loaded = app.load(1);
                assert_eq!(loaded.photo, saved.value);
                assert_eq!((loaded.photo_width, loaded.photo_height), (Some(191), Some(287)));
                // A NULL file column loads as an empty field.
                assert!(loaded.manual.is_empty());
                assert_eq!(loaded.manual.name(), None);

                let file = photo.file(&loaded.photo);
                assert_eq!(file.name(), Some("cars/chevy.png"));
                assert_eq!(file.url().await?, "https://cdn.example.com/media/cars/chevy.png");
                assert_eq!(file.size().await?, image.len() as u64);
                assert_eq!(file.metadata().await?.content_type.as_deref(), Some("image/png"));
                assert_eq!(file.read_to_bytes().await?.as_ref(), image.as_slice());
                let part = storage_core::collect_bytes(
                    file.open_range(storage_core::ByteRange::new(8, 16)).await?.stream,
                )
                .await?;
                assert_eq!(part.as_ref(), &image[8..16]);
                assert_eq!(file.image_size().await?.width, 191);
                assert!(file.exists().await?);

                // Every operation on the empty field says which field has no file.
                let empty = manual.file(&loaded.manual);
                for err in [
                    empty.url().await.unwrap_err(),
                    empty.size().await.unwrap_err(),
                    empty.open().await.map(|_| ()).unwrap_err(),
                    empty.delete().await.map(|_| ()).unwrap_err(),
                ] {
                    assert!(matches!(err, Error::EmptyField { ref field } if field == "manual"));
                    assert_eq!(err.to_string(), "the 'manual' field has no file");
                }
                assert!(!empty.exists().await?);
                // A value the row holds is still checked as a name before it reaches storage.
                let hostile = FileRef::new("../outside/secret.txt");
                let err = manual.file(&hostile).url().await.unwrap_err();
                assert!(matches!(err, Error::SuspiciousPath { .. }), "{err}");

                // A value written through AsChangeset comes back, nullable column included.
                let saved = manual.save("owner's manual.pdf", &b"%PDF-1.4 manual"[..]).await?;
                loaded.manual = saved.value.clone();
                diesel::update(&loaded).set(&loaded).execute(&mut app.conn)?;
                let again = app.load(1);
                assert_eq!(again.manual.as_str(), "manuals/owners_manual.pdf");
                assert_eq!(
                    manual.file(&again.manual).read_to_bytes().await?.as_ref(),
                    b"%PDF-1.4 manual"
                );
                // The whole row can also be inserted from the struct.
                let copy = Car { id: 2, ..again.clone() };
                diesel::insert_into(cars::table).values(&copy).execute(&mut app.conn)?;
                assert_eq!(app.load(2).photo, again.photo);
                Ok(())
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn upload_to_layouts_follow_the_core_rules() -> TestResult {
                let Some(app) = App::new().await? else { return Ok(()) };
                let now = Utc::now();
                let dated = FileField::new("cars", "manual", app.storage.clone())?
                    .upload_to(UploadTo::template("manuals/%Y/%m/"));
                let saved = dated.save("spec sheet.pdf", &b"a"[..]).await?;
                assert_eq!(
                    saved.value.as_str(),
                    format!("manuals/{}/{:02}/spec_sheet.pdf", now.year(), now.month())
                );
                // A taken name gets Django's alternative name; the first file is untouched.
                let second = dated.save("spec sheet.pdf", &b"b"[..]).await?;
                assert_ne!(second.value, saved.value);
                assert!(second.value.as_str().starts_with(&format!(
                    "manuals/{}/{:02}/spec_sheet_",
                    now.year(),
                    now.month()
                )));
                assert!(second.value.as_str().ends_with(".pdf"));
                assert_eq!(dated.file(&saved.value).read_to_bytes().await?.as_ref(), b"a");

                // Random names keep the extension.
                let uuid = FileField::new("cars", "photo", app.storage.clone())?
                    .upload_to(UploadTo::uuid("photos"));
                let saved = uuid.save("Holiday.JPG", &b"x"[..]).await?;
                assert!(saved.value.as_str().starts_with("photos/"), "{}", saved.value);
                assert!(saved.value.as_str().ends_with(".jpg"), "{}", saved.value);

                // Django's callable upload_to(instance, filename).
                let by_make = FileField::new("cars", "photo", app.storage.clone())?
                    .upload_to_with(|car: &Car, filename| format!("cars/{}/{filename}", car.make));
                let chevy = car(7, "chevy", FileRef::empty());
                let saved = by_make.save_for(&chevy, "front.jpg", &b"y"[..]).await?;
                assert_eq!(saved.value.as_str(), "cars/chevy/front.jpg");
                // What the function returns is checked like any name: nothing is stored.
                let before = app.files();
                let hostile = car(8, "../../etc", FileRef::empty());
                let err = by_make.save_for(&hostile, "passwd", &b"z"[..]).await.unwrap_err();
                assert!(matches!(err, Error::SuspiciousPath { .. }), "{err}");
                assert_eq!(app.files(), before);

                // max_length: Django's 100 by default, a long name is shortened to fit.
                let long = format!("{}.pdf", "x".repeat(150));
                let saved = dated.save(&long, &b"l"[..]).await?;
                assert!(saved.value.as_str().len() <= 100, "{}", saved.value);
                assert!(saved.value.as_str().ends_with(".pdf"));
                let short = dated.clone().max_length(20);
                let err = short.save("a-rather-long-name.pdf", &b"s"[..]).await.unwrap_err();
                assert!(matches!(err, Error::InvalidName { .. }), "{err}");
                Ok(())
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn an_image_field_refuses_what_is_not_an_image() -> TestResult {
                let Some(app) = App::new().await? else { return Ok(()) };
                let photo = ImageField::new("cars", "photo", app.storage.clone())?
                    .max_size(4000, 3000);
                let before = app.files();
                for (name, content) in [
                    ("notes.png", b"just text that claims to be a PNG".to_vec()),
                    ("doc.jpg", b"%PDF-1.7 not a picture".to_vec()),
                    // A PNG signature with no header after it: no size to read.
                    ("cut.png", b"\x89PNG\r\n\x1a\n".to_vec()),
                    ("empty.png", Vec::new()),
                ] {
                    let err = photo.save(name, content).await.unwrap_err();
                    assert!(matches!(err, Error::UnsupportedType { .. }), "{name}: {err}");
                    assert!(err.to_string().contains(name), "{err}");
                }
                let err = photo.save("huge.png", png(5000, 10)).await.unwrap_err();
                assert!(err.to_string().contains("5000x10"), "{err}");
                assert_eq!(app.files(), before, "a refused image stores nothing");

                // The bytes decide the type, and the name says it.
                let saved = photo.save("logo.png", gif(32, 16)).await?;
                assert_eq!((saved.width, saved.height), (32, 16));
                assert_eq!(saved.meta.content_type.as_deref(), Some("image/gif"));
                assert_eq!(saved.value.as_str(), "logo.gif");
                assert_eq!(saved.size(), storage_core::ImageSize { width: 32, height: 16 });
                assert_eq!(app.files(), before + 1);
                // A plain file field stores anything; its file is no image.
                let any = FileField::new("cars", "manual", app.storage.clone())?;
                let text = any.save("readme.txt", &b"text"[..]).await?;
                assert!(text.image.is_none());
                let err = any.file(&text.value).image_size().await.unwrap_err();
                assert!(matches!(err, Error::UnsupportedType { .. }));
                Ok(())
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn orphans_are_what_no_referencing_table_holds() -> TestResult {
                let Some(mut app) = App::new().await? else { return Ok(()) };
                let photo = FileField::new("cars", "photo", app.storage.clone())?;
                let logo = FileField::new("dealers", "logo", app.storage.clone())?;
                let in_cars = photo.save("car.jpg", &b"car"[..]).await?.value;
                let in_dealers = logo.save("dealer.png", &b"dealer"[..]).await?.value;
                let orphan = photo.save("never-saved.jpg", &b"orphan"[..]).await?.value;
                diesel::insert_into(cars::table)
                    .values(&car(1, "chevy", in_cars.clone()))
                    .execute(&mut app.conn)?;
                diesel::insert_into(dealers::table)
                    .values((dealers::id.eq(1), dealers::logo.eq(&in_dealers)))
                    .execute(&mut app.conn)?;

                // Nothing declared, nothing given: refused.
                let none = OrphanCleanup::new(&*app.storage, &*app.storage, &FileReferences::new())
                    .await
                    .unwrap_err();
                assert!(matches!(none, Error::BadRequest { .. }), "{none}");

                // The declaration is kept in the database, and idempotent.
                let columns = FileReferences::new()
                    .with(photo.column().clone())
                    .with(logo.column().clone());
                app.storage.declare_references(&columns).await?;
                app.storage.declare_references(&columns).await?;
                assert_eq!(app.storage.declared_references().await?, columns);

                // Young files are left alone: their rows may not be saved yet.
                let cleanup =
                    OrphanCleanup::new(&*app.storage, &*app.storage, &FileReferences::new()).await?;
                assert!(cleanup.find().await?.is_empty());

                let cleanup = cleanup.older_than(Duration::ZERO);
                let found = cleanup.find().await?;
                let names: Vec<&str> = found.iter().map(|m| m.name.as_str()).collect();
                assert_eq!(names, [orphan.as_str()]);
                // Only one table declared: the other table's file looks orphaned.
                app.storage
                    .forget_references(&FileReferences::new().with(logo.column().clone()))
                    .await?;
                let partial =
                    OrphanCleanup::new(&*app.storage, &*app.storage, &FileReferences::new())
                        .await?
                        .older_than(Duration::ZERO);
                let names: Vec<String> =
                    partial.find().await?.iter().map(|m| m.name.to_string()).collect();
                assert_eq!(names, [in_dealers.to_string(), orphan.to_string()]);
                // ... unless given here.
                let given = OrphanCleanup::new(
                    &*app.storage,
                    &*app.storage,
                    &FileReferences::parse(["dealers.logo"])?,
                )
                .await?
                .older_than(Duration::ZERO);
                assert_eq!(given.find().await?.len(), 1);

                // A row saved between find and delete keeps its file.
                let found = given.find().await?;
                diesel::insert_into(cars::table)
                    .values(&car(2, "late", orphan.clone()))
                    .execute(&mut app.conn)?;
                assert!(!given.delete(&found[0]).await?);
                assert!(app.storage.exists(orphan.as_str()).await?);
                diesel::delete(cars::table.find(2)).execute(&mut app.conn)?;

                let report = given.delete_all().await?;
                assert_eq!((report.files, report.bytes, report.kept), (1, 6, 0));
                assert!(!app.storage.exists(orphan.as_str()).await?);
                assert!(app.storage.exists(in_cars.as_str()).await?);
                assert!(app.storage.exists(in_dealers.as_str()).await?);
                Ok(())
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn replacing_keeps_or_deletes_the_old_file_after_the_row_is_saved() -> TestResult {
                let Some(mut app) = App::new().await? else { return Ok(()) };
                let keeping = FileField::new("cars", "photo", app.storage.clone())?
                    .upload_to(UploadTo::template("cars"))
                    .image();
                let deleting = keeping.clone().delete_replaced(app.storage.clone());
                // Another table declares its column: a file shared with it is never deleted.
                app.storage
                    .declare_references(&FileReferences::parse(["dealers.logo"])?)
                    .await?;

                let first = keeping.save("one.png", png(10, 10)).await?;
                diesel::insert_into(cars::table)
                    .values(&car(1, "chevy", first.value.clone()))
                    .execute(&mut app.conn)?;

                // Without cleanup (Django's default): the old file stays.
                let mut row = app.load(1);
                let change = keeping.replace(&row.photo, "two.png", png(20, 10)).await?;
                assert_eq!(change.saved().and_then(|s| s.image).map(|i| i.width), Some(20));
                row.photo = change.value();
                diesel::update(&row).set(&row).execute(&mut app.conn)?;
                assert_eq!(change.commit().await?, OldFile::Kept);
                assert!(app.storage.exists(first.value.as_str()).await?);

                // With cleanup, but the row was not saved: the old file is still referenced.
                let old = app.load(1).photo;
                let change = deleting.replace(&old, "three.png", png(30, 10)).await?;
                let unsaved = change.value();
                assert_eq!(change.commit().await?, OldFile::StillReferenced);
                assert!(app.storage.exists(old.as_str()).await?);
                assert!(app.storage.exists(unsaved.as_str()).await?);

                // With cleanup, row saved: the old file goes, only then.
                let mut row = app.load(1);
                let change = deleting.replace(&row.photo, "four.png", png(40, 10)).await?;
                assert!(app.storage.exists(old.as_str()).await?, "not before the row is saved");
                row.photo = change.value();
                diesel::update(&row).set(&row).execute(&mut app.conn)?;
                assert_eq!(change.commit().await?, OldFile::Deleted);
                assert!(!app.storage.exists(old.as_str()).await?);
                assert_eq!(app.load(1).photo.as_str(), "cars/four.png");

                // The row could not be saved: rollback removes the new file, keeps the old.
                let change = deleting.replace(&row.photo, "five.png", png(50, 10)).await?;
                let rolled_back = change.value();
                change.rollback().await?;
                assert!(!app.storage.exists(rolled_back.as_str()).await?);
                assert!(app.storage.exists(row.photo.as_str()).await?);
                // finish: the row update's outcome decides commit or rollback.
                let change = deleting.replace(&row.photo, "six.png", png(60, 10)).await?;
                let failed: Result<usize, &str> = Err("the row was not saved");
                let new = change.value();
                assert_eq!(change.finish(failed).await, Err("the row was not saved"));
                assert!(!app.storage.exists(new.as_str()).await?);
                assert!(app.storage.exists(row.photo.as_str()).await?);
                let change = deleting.replace(&row.photo, "seven.png", png(70, 10)).await?;
                let (old, new) = (row.photo.clone(), change.value());
                row.photo = new.clone();
                let saved = diesel::update(&row).set(&row).execute(&mut app.conn);
                assert_eq!(change.finish(saved).await?, 1);
                assert!(!app.storage.exists(old.as_str()).await?);
                assert!(app.storage.exists(new.as_str()).await?);
                // The row is saved but the old file cannot be looked up: the change still
                // stands (the old file is left for cleanup).
                let blind = keeping.clone().delete_replaced(Arc::new(Unreachable));
                let change = blind.replace(&row.photo, "eight.png", png(80, 10)).await?;
                let (old, new) = (row.photo.clone(), change.value());
                row.photo = new.clone();
                let saved = diesel::update(&row).set(&row).execute(&mut app.conn);
                assert_eq!(change.finish(saved).await?, 1);
                assert!(app.storage.exists(old.as_str()).await?, "kept for cleanup");
                assert!(app.storage.exists(new.as_str()).await?);

                // A refused replacement stores nothing and leaves the old file.
                let err = deleting.replace(&row.photo, "nine.png", &b"text"[..]).await;
                assert!(matches!(err, Err(Error::UnsupportedType { .. })));
                assert!(app.storage.exists(row.photo.as_str()).await?);

                // A file another table shares survives clearing the car's field.
                diesel::insert_into(dealers::table)
                    .values((dealers::id.eq(1), dealers::logo.eq(&row.photo)))
                    .execute(&mut app.conn)?;
                let change = deleting.clear(&row.photo);
                assert!(change.value().is_empty());
                row.photo = change.value();
                diesel::update(&row).set(&row).execute(&mut app.conn)?;
                assert_eq!(change.commit().await?, OldFile::StillReferenced);
                assert!(app.storage.exists("cars/eight.png").await?);
                // Once the dealer lets go too, clearing deletes.
                diesel::update(dealers::table.find(1))
                    .set(dealers::logo.eq(""))
                    .execute(&mut app.conn)?;
                let change = deleting.clear(&FileRef::new("cars/eight.png"));
                assert_eq!(change.commit().await?, OldFile::Deleted);
                assert!(!app.storage.exists("cars/eight.png").await?);
                // Clearing an empty field has nothing to delete.
                assert_eq!(deleting.clear(&FileRef::empty()).commit().await?, OldFile::None);
                Ok(())
            }
        }
    };
}

model_suite!(sqlite, diesel::sqlite::SqliteConnection, {
    let db = common::SqliteDb::new()?;
    let (storage_url, conn_url) = (
        db.url.clone(),
        db.url.trim_start_matches("sqlite://").to_owned(),
    );
    Some((
        Box::new(db) as Box<dyn common::RawDb>,
        storage_url,
        conn_url,
    ))
});

/// A server database for a suite: storage and connection share its URL.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn on_server(db: impl common::RawDb + 'static) -> (Box<dyn common::RawDb>, String, String) {
    let url = db.url().to_owned();
    (Box::new(db), url.clone(), url)
}

#[cfg(feature = "postgres")]
model_suite!(
    postgres,
    diesel::pg::PgConnection,
    common::pg_db()?.map(on_server)
);

#[cfg(feature = "mysql")]
model_suite!(
    mysql,
    diesel::mysql::MysqlConnection,
    common::mysql_db()?.map(on_server)
);

#[test]
fn file_references_parse_only_identifiers() {
    let parsed = FileReferences::parse(["cars.photo", "app.dealers.logo"]).unwrap();
    assert_eq!(parsed.to_string(), "app.dealers.logo, cars.photo");
    for bad in [
        "cars",
        "cars.photo; DROP TABLE cars",
        "a.b.c.d",
        ".photo",
        "cars.1photo",
    ] {
        assert!(FileReferences::parse([bad]).is_err(), "{bad}");
    }
}
