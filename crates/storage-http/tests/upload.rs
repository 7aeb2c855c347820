//! `save_multipart`: streaming multipart uploads into storage under a policy.

// Test code: an index out of bounds is a test failure; the data sizes are small.
#![allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]

use bytes::Bytes;
use futures::StreamExt;
use storage_core::{Error, InMemoryStorage, Result, SaveOptions, Storage, StorageExt, UploadTo};
use storage_http::{
    human_size, refusal_message, save_multipart, ImagePolicy, ImageSize, Upload, UploadPolicy,
    MAX_TEXT_FIELD, MAX_TEXT_TOTAL,
};

const BOUNDARY: &str = "XyZzY-boundary";

/// A PNG signature and header chunk: enough for type sniffing and for the size.
fn png(width: u32, height: u32, extra: usize) -> Vec<u8> {
    let mut data = vec![
        0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R',
    ];
    data.extend_from_slice(&width.to_be_bytes());
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    data.extend(std::iter::repeat_n(7u8, extra));
    data
}

enum Part<'a> {
    Text(&'a str, &'a str),
    File {
        field: &'a str,
        filename: &'a str,
        content_type: &'a str,
        data: Vec<u8>,
    },
}

fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part {
            Part::Text(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File {
                field,
                filename,
                content_type,
                data,
            } => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(data);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The body as the network delivers it: in small chunks.
async fn upload(storage: &dyn Storage, body: Vec<u8>, policy: &UploadPolicy) -> Result<Upload> {
    let chunks: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(4096)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    save_multipart(
        storage,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        futures::stream::iter(chunks),
        policy,
    )
    .await
}

fn file<'a>(field: &'a str, filename: &'a str, content_type: &'a str, data: Vec<u8>) -> Part<'a> {
    Part::File {
        field,
        filename,
        content_type,
        data,
    }
}

async fn stored_count(storage: &InMemoryStorage) -> usize {
    storage.len()
}

#[tokio::test]
async fn files_and_fields_are_stored_with_safe_names_and_sniffed_types() -> Result<()> {
    let storage = InMemoryStorage::new();
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let body = multipart(&[
        Part::Text("title", "holiday"),
        file("doc", "../../hax0rd.txt", "text/plain", b"hello".to_vec()),
        file(
            "photo",
            "C:\\Users\\me\\Me At The Beach.PNG",
            "application/octet-stream",
            png(640, 480, 100),
        ),
        file("big", "big.bin", "application/octet-stream", big.clone()),
    ]);
    let policy = UploadPolicy::new()
        .save_options(SaveOptions::new().upload_to(UploadTo::template("uploads/")));
    let result = upload(&storage, body, &policy).await?;
    assert_eq!(
        result.fields,
        vec![("title".to_owned(), "holiday".to_owned())]
    );
    let names: Vec<&str> = result.files.iter().map(|f| f.meta.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "uploads/hax0rd.txt",
            "uploads/Me_At_The_Beach.PNG",
            "uploads/big.bin"
        ]
    );
    assert_eq!(result.files[1].client_filename, "Me At The Beach.PNG");
    assert_eq!(
        result.files[1].meta.content_type.as_deref(),
        Some("image/png"),
        "sniffed, not declared"
    );
    assert_eq!(
        result.files[0].meta.content_type.as_deref(),
        Some("text/plain")
    );
    assert_eq!(
        storage.read_to_bytes("uploads/big.bin").await?,
        Bytes::from(big)
    );
    assert_eq!(
        storage.read_to_bytes("uploads/hax0rd.txt").await?,
        Bytes::from_static(b"hello")
    );
    Ok(())
}

#[tokio::test]
async fn limits_refuse_the_whole_request_and_store_nothing() -> Result<()> {
    let storage = InMemoryStorage::new();
    let small = file("a", "a.txt", "text/plain", b"fits".to_vec());
    let large = file("b", "b.bin", "application/octet-stream", vec![1u8; 300_000]);
    let per_file = UploadPolicy::new().max_file_size(100_000);
    let result = upload(&storage, multipart(&[small, large]), &per_file).await;
    assert!(
        matches!(result, Err(Error::TooLarge { limit: 100_000 })),
        "{result:?}"
    );
    // What a person is told: the limit in binary units.
    let told = result
        .as_ref()
        .err()
        .map(refusal_message)
        .unwrap_or_default();
    assert_eq!(told, "the upload is larger than the 97.7 KiB limit");
    assert_eq!(
        stored_count(&storage).await,
        0,
        "the file that fitted was removed too"
    );

    let per_request = UploadPolicy::new().max_request_size(200_000);
    let three = (0..3).map(|i| format!("f{i}.bin")).collect::<Vec<_>>();
    let parts: Vec<Part<'_>> = three
        .iter()
        .map(|n| file("f", n, "application/octet-stream", vec![2u8; 90_000]))
        .collect();
    let result = upload(&storage, multipart(&parts), &per_request).await;
    assert!(
        matches!(result, Err(Error::TooLarge { limit: 200_000 })),
        "{result:?}"
    );
    assert_eq!(stored_count(&storage).await, 0);

    let few = UploadPolicy::new().max_files(2);
    let result = upload(&storage, multipart(&parts), &few).await;
    assert!(
        matches!(result, Err(Error::BadRequest { .. })),
        "{result:?}"
    );
    assert_eq!(stored_count(&storage).await, 0);

    // Text fields: each within MAX_TEXT_FIELD, together over MAX_TEXT_TOTAL; a file before
    // them is deleted again.
    let value = "t".repeat(MAX_TEXT_FIELD);
    let names: Vec<String> = (0..=MAX_TEXT_TOTAL / MAX_TEXT_FIELD)
        .map(|i| format!("f{i}"))
        .collect();
    let mut parts = vec![file("a", "a.txt", "text/plain", b"fits".to_vec())];
    parts.extend(names.iter().map(|name| Part::Text(name, &value)));
    let result = upload(&storage, multipart(&parts), &UploadPolicy::new()).await;
    assert!(
        matches!(result, Err(Error::TooLarge { limit }) if limit == MAX_TEXT_TOTAL as u64),
        "{result:?}"
    );
    assert_eq!(stored_count(&storage).await, 0);
    // Exactly at the total is kept.
    let parts: Vec<Part<'_>> = names
        .iter()
        .take(MAX_TEXT_TOTAL / MAX_TEXT_FIELD)
        .map(|name| Part::Text(name, &value))
        .collect();
    let kept = upload(&storage, multipart(&parts), &UploadPolicy::new()).await?;
    assert_eq!(kept.fields.len(), MAX_TEXT_TOTAL / MAX_TEXT_FIELD);
    Ok(())
}

#[tokio::test]
async fn allowed_types_are_checked_against_the_bytes() -> Result<()> {
    let storage = InMemoryStorage::new();
    let images = UploadPolicy::new().allowed_types(["image/png", "image/jpeg"]);
    // Text pretending to be a PNG.
    let liar = file(
        "f",
        "evil.png",
        "image/png",
        b"<script>alert(1)</script>".to_vec(),
    );
    let result = upload(&storage, multipart(&[liar]), &images).await;
    assert!(
        matches!(result, Err(Error::UnsupportedType { .. })),
        "{result:?}"
    );
    // A real PNG declared as something else is fine, and stored as what it is.
    let honest = file("f", "pic.dat", "application/octet-stream", png(1, 1, 0));
    let saved = upload(&storage, multipart(&[honest]), &images).await?;
    assert_eq!(
        saved.files[0].meta.content_type.as_deref(),
        Some("image/png")
    );
    // ... and under the name of what it is.
    assert_eq!(saved.files[0].meta.name.as_str(), "pic.png");
    assert_eq!(saved.files[0].client_filename, "pic.dat");
    // Text types, which have no magic number, are taken at their word only if allowed, and
    // the name then says that type, not what the client picked.
    let text = UploadPolicy::new().allowed_types(["text/plain", "text/csv"]);
    let claimed = [
        ("notes.txt", "text/plain", "notes.txt"),
        ("run.cmd", "text/plain", "run.txt"),
        ("page.html", "text/csv", "page.csv"),
    ];
    for (sent, declared, stored) in claimed {
        let saved = upload(
            &storage,
            multipart(&[file("f", sent, declared, b"plain".to_vec())]),
            &text,
        )
        .await?;
        assert_eq!(saved.files[0].meta.name.as_str(), stored, "{sent}");
    }
    let pdf_claim = file("f", "x.pdf", "application/pdf", b"not a pdf".to_vec());
    let result = upload(
        &storage,
        multipart(&[pdf_claim]),
        &UploadPolicy::new().allowed_types(["application/pdf"]),
    )
    .await;
    assert!(
        matches!(result, Err(Error::UnsupportedType { .. })),
        "{result:?}"
    );
    assert_eq!(stored_count(&storage).await, 4);
    Ok(())
}

#[tokio::test]
async fn image_policy_reports_size_and_refuses_non_images() -> Result<()> {
    let storage = InMemoryStorage::new();
    let policy = UploadPolicy::new().images(ImagePolicy::new().max_size(2000, 2000));
    let saved = upload(
        &storage,
        multipart(&[file("p", "me.png", "image/png", png(640, 480, 10))]),
        &policy,
    )
    .await?;
    assert_eq!(
        saved.files[0].image,
        Some(ImageSize {
            width: 640,
            height: 480
        })
    );
    for (name, data) in [
        ("fake.png", b"GIF? no, text".to_vec()),
        ("huge.png", png(5000, 10, 0)),
    ] {
        let result = upload(
            &storage,
            multipart(&[file("p", name, "image/png", data)]),
            &policy,
        )
        .await;
        assert!(
            matches!(result, Err(Error::UnsupportedType { .. })),
            "{name}: {result:?}"
        );
        let told = result
            .as_ref()
            .err()
            .map(refusal_message)
            .unwrap_or_default();
        let expected = if name == "huge.png" {
            "'huge.png' is 5000x10, larger than the 2000x2000 allowed"
        } else {
            "'fake.png' is not an image"
        };
        assert_eq!(told, expected);
    }
    assert_eq!(stored_count(&storage).await, 1);
    Ok(())
}

#[tokio::test]
async fn bad_requests_and_names() -> Result<()> {
    let storage = InMemoryStorage::new();
    let no_boundary = save_multipart(
        &storage,
        "multipart/form-data",
        futures::stream::iter(Vec::<Result<Bytes, std::io::Error>>::new()),
        &UploadPolicy::new(),
    )
    .await;
    assert!(
        matches!(no_boundary, Err(Error::BadRequest { .. })),
        "{no_boundary:?}"
    );
    let mut broken = multipart(&[file("f", "a.txt", "text/plain", b"abc".to_vec())]);
    broken.truncate(broken.len() - 20);
    let result = upload(&storage, broken, &UploadPolicy::new()).await;
    assert!(
        matches!(result, Err(Error::BadRequest { .. })),
        "{result:?}"
    );
    for bad in ["..", "/tmp/", "???"] {
        let result = upload(
            &storage,
            multipart(&[file("f", bad, "text/plain", b"x".to_vec())]),
            &UploadPolicy::new(),
        )
        .await;
        assert!(
            matches!(result, Err(Error::InvalidName { .. })),
            "{bad}: {result:?}"
        );
    }
    // Only the named field is stored.
    let only = UploadPolicy::new().field("avatar");
    let parts = [
        file("other", "a.txt", "text/plain", b"a".to_vec()),
        file("avatar", "b.txt", "text/plain", b"b".to_vec()),
    ];
    let saved = upload(&storage, multipart(&parts), &only).await?;
    assert_eq!(saved.files.len(), 1);
    assert_eq!(saved.files[0].meta.name.as_str(), "b.txt");
    assert_eq!(stored_count(&storage).await, 1);
    Ok(())
}

/// A part that declares a file name nobody can read is refused, never taken for a text field
/// (which would answer success with nothing stored); a plain text field stays one.
#[tokio::test]
async fn unreadable_file_names_are_refused() -> Result<()> {
    let storage = InMemoryStorage::new();
    let dispositions: [&[u8]; 5] = [
        b"form-data; name=\"file\"; filename=\"\xff\xfe.txt\"",
        b"form-data; name=\"file\"; filename*=UTF-8''evil.html; filename=\"safe.txt\"",
        b"form-data; name=\"file\"; filename*=UTF-8''only.txt",
        b"form-data; name=\"file\"; FileName=\"upper.txt\"",
        b"form-data; name=\"file\";filename =\"spaced\xe9.txt\"",
    ];
    for disposition in dispositions {
        let mut body = format!("--{BOUNDARY}\r\nContent-Disposition: ").into_bytes();
        body.extend_from_slice(disposition);
        body.extend_from_slice(b"\r\nContent-Type: text/plain\r\n\r\ncontent\r\n");
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let result = upload(&storage, body, &UploadPolicy::new()).await;
        let shown = String::from_utf8_lossy(disposition);
        assert!(
            matches!(&result, Err(Error::BadRequest { reason })
                if reason.contains("the file name of part 'file' could not be read")),
            "{shown}: {result:?}"
        );
        assert_eq!(stored_count(&storage).await, 0, "{shown}");
    }
    // A file for another field than the policy's is skipped, readable name or not.
    let mut body = format!("--{BOUNDARY}\r\nContent-Disposition: ").into_bytes();
    body.extend_from_slice(b"form-data; name=\"other\"; filename=\"\xff.txt\"\r\n\r\nx\r\n");
    body.extend_from_slice(&multipart(&[file(
        "avatar",
        "a.txt",
        "text/plain",
        b"a".to_vec(),
    )]));
    let only = upload(&storage, body, &UploadPolicy::new().field("avatar")).await?;
    assert_eq!(only.files.len(), 1);
    assert_eq!(only.files[0].meta.name.as_str(), "a.txt");
    storage.delete(&only.files[0].meta.name).await?;
    // Names that merely contain the word are text fields as before.
    let fields = multipart(&[
        Part::Text("filename", "notes"),
        Part::Text("my_filename_hint", "x"),
    ]);
    let upload = upload(&storage, fields, &UploadPolicy::new()).await?;
    assert_eq!(upload.files.len(), 0);
    assert_eq!(
        upload.fields,
        vec![
            ("filename".to_owned(), "notes".to_owned()),
            ("my_filename_hint".to_owned(), "x".to_owned())
        ]
    );
    Ok(())
}

#[test]
fn sizes_for_people_and_server_faults_without_detail() {
    assert_eq!(human_size(512), "512 B");
    assert_eq!(human_size(1 << 20), "1.0 MiB");
    assert_eq!(human_size(100 << 20), "100.0 MiB");
    let words = |e: Error| refusal_message(&e);
    assert_eq!(
        words(Error::BadRequest {
            reason: "too many files (at most 2)".to_owned()
        }),
        "the upload could not be read (too many files (at most 2))"
    );
    let bad_name = storage_core::Name::new("../x")
        .err()
        .map(words)
        .unwrap_or_default();
    assert!(
        bad_name.starts_with("the file name is not acceptable (") && bad_name.contains("../x"),
        "{bad_name}"
    );
    // Not a fault to retry: the storage cannot do it at all.
    let cannot = words(Error::NotSupported {
        backend: "filesystem",
        operation: "private files".to_owned(),
    });
    assert_eq!(cannot, "this storage cannot do that (private files)");
    let fault = Error::backend(
        "database",
        "connect to db.internal:5432".to_owned(),
        "refused",
    );
    let told = refusal_message(&fault);
    assert!(told.contains("unavailable"), "{told}");
    assert!(!told.contains("db.internal"), "{told}");
}

/// A body that stops sending is refused after the idle timeout, and one that trickles under the
/// minimum rate after the grace period; neither stores anything.
#[tokio::test]
async fn stalled_and_trickled_bodies_are_refused() -> Result<()> {
    let storage = InMemoryStorage::new();
    let policy = UploadPolicy::new().slow_upload_limits(
        std::time::Duration::from_millis(300),
        1000,
        std::time::Duration::from_millis(500),
    );
    let body = multipart(&[file("f", "a.txt", "text/plain", vec![b'a'; 5000])]);
    // What the refusal says, within 10 s (a broken guard fails the test instead of hanging it);
    // empty when the body was taken.
    let refusal = |body| {
        let (storage, policy) = (&storage, &policy);
        async move {
            let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
            let result = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                save_multipart(storage, &content_type, body, policy),
            )
            .await
            .map_err(|e| Error::backend("test", "not refused in time", e))?;
            Ok::<_, Error>(
                result
                    .err()
                    .map(|e| refusal_message(&e))
                    .unwrap_or_default(),
            )
        }
    };
    // 100 bytes, then nothing.
    let head: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::copy_from_slice(&body[..100]))];
    let stalled = futures::stream::iter(head).chain(futures::stream::pending());
    let told = refusal(stalled.boxed()).await?;
    assert!(told.contains("stalled"), "{told:?}");
    // 10 bytes every 100 ms: 100 B/s, under the 1000 B/s floor once 500 ms have passed.
    let trickle = futures::stream::iter(
        body.chunks(10)
            .map(Bytes::copy_from_slice)
            .collect::<Vec<_>>(),
    )
    .then(|chunk| async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        Ok::<_, std::io::Error>(chunk)
    });
    let told = refusal(trickle.boxed()).await?;
    assert!(told.contains("too slow"), "{told:?}");
    assert_eq!(stored_count(&storage).await, 0);
    // The same body at full speed is stored.
    upload(&storage, body, &policy).await?;
    assert_eq!(stored_count(&storage).await, 1);
    Ok(())
}

/// `receive_file`, what the adapters' upload forms do: one file, into a destination's rules.
#[tokio::test]
async fn one_file_is_received_into_a_destination() -> Result<()> {
    use std::sync::Arc;
    use storage_core::Destination;
    use storage_http::receive_file;

    let storage = Arc::new(InMemoryStorage::new());
    let avatars = Destination::new(storage.clone())
        .save_options(SaveOptions::new().upload_to(UploadTo::template("avatars")))
        .image(ImagePolicy::new().max_size(100, 100))
        .max_bytes(1000)
        .label("the 'avatar' field");
    let receive = |body: Vec<u8>, policy: UploadPolicy| {
        let avatars = avatars.clone();
        async move {
            let chunks: Vec<Result<Bytes, std::io::Error>> = body
                .chunks(100)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            receive_file(
                &format!("multipart/form-data; boundary={BOUNDARY}"),
                futures::stream::iter(chunks),
                &policy,
                &avatars,
            )
            .await
        }
    };

    // The field's rules: its directory, its image check, the image's own extension; the text
    // fields come along.
    let form = multipart(&[
        Part::Text("caption", "me at the beach"),
        file("avatar", "me.html", "text/html", png(64, 64, 10)),
    ]);
    let received = receive(form, UploadPolicy::new()).await?;
    assert_eq!(received.meta.name.as_str(), "avatars/me.png");
    assert_eq!(received.client_filename, "me.html");
    assert_eq!(received.image.map(|s| s.width), Some(64));
    assert_eq!(
        received.fields,
        vec![("caption".to_owned(), "me at the beach".to_owned())]
    );

    // No file, two files, or not the policy's field: 400, nothing stored.
    let before = storage.len();
    let none = receive(
        multipart(&[Part::Text("caption", "x")]),
        UploadPolicy::new(),
    )
    .await;
    assert!(
        matches!(&none, Err(Error::BadRequest { reason }) if reason == "the upload has no file"),
        "{none:?}"
    );
    let two = multipart(&[
        file("avatar", "a.png", "image/png", png(8, 8, 0)),
        file("avatar", "b.png", "image/png", png(8, 8, 0)),
    ]);
    let two = receive(two, UploadPolicy::new()).await;
    assert!(
        matches!(&two, Err(Error::BadRequest { reason }) if reason == "more than 1 file in one request"),
        "{two:?}"
    );
    let elsewhere = multipart(&[file("other", "a.png", "image/png", png(8, 8, 0))]);
    let elsewhere = receive(elsewhere, UploadPolicy::new().field("avatar")).await;
    assert!(
        matches!(&elsewhere, Err(Error::BadRequest { reason })
            if reason == "the upload has no file in the 'avatar' field"),
        "{elsewhere:?}"
    );

    // Both image rules hold: the route's 4096 and the field's 100; the field names itself.
    let wide = multipart(&[file("avatar", "wide.png", "image/png", png(101, 8, 0))]);
    let route = UploadPolicy::new().images(ImagePolicy::new().max_size(4096, 4096));
    let wide = receive(wide, route).await;
    assert!(
        matches!(&wide, Err(Error::UnsupportedType { reason })
            if reason == "the 'avatar' field: 'wide.png' is 101x8, larger than the 100x100 allowed"),
        "{wide:?}"
    );
    let tall = multipart(&[file("avatar", "tall.png", "image/png", png(8, 60, 0))]);
    let route = UploadPolicy::new().images(ImagePolicy::new().max_size(50, 50));
    assert!(matches!(
        receive(tall, route).await,
        Err(Error::UnsupportedType { .. })
    ));
    // The smaller byte limit wins: the field's 1000 over the route's default.
    let big = multipart(&[file("avatar", "big.png", "image/png", png(8, 8, 2000))]);
    assert!(matches!(
        receive(big, UploadPolicy::new()).await,
        Err(Error::TooLarge { limit: 1000 })
    ));
    assert_eq!(storage.len(), before, "a refusal stored something");
    Ok(())
}
