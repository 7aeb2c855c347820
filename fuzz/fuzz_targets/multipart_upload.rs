//! `storage_http::save_multipart` into an `InMemoryStorage` under an `UploadPolicy` with small
//! limits (4096 bytes a file, 16384 a request, 3 files).
//!
//! Input: byte 0 = flags (bits 0-1: naming: default / `upload_to` template / uuid / keep_name;
//! bit 2: images only; bit 3: images at most 16x16; bit 4: allowed_types; bit 5: only field
//! "file"; bit 6: the body stream fails part-way; bit 7: max_length 40), byte 1 = chunk size
//! (0: one chunk), byte 2 = where the stream fails (in 256ths of the body), then the
//! Content-Type line, then the body.
//!
//! Invariants: never panics; on Err nothing at all is stored (all or nothing); the outcome does
//! not depend on how the body is split into chunks; on Ok the storage
//! holds exactly `upload.files`, each under a valid name, at most max_file_size bytes, with the
//! size its metadata says, of an accepted type / image size, from the wanted field; no more
//! than max_files files and max_request_size bytes in all.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use storage_core::{
    Error, ImagePolicy, InMemoryStorage, SaveOptions, Storage, StorageExt, UploadTo,
};
use storage_fuzz::{block_on, check_name, debug};
use storage_http::{
    save_multipart, status_for, type_matches, Upload, UploadPolicy, MAX_TEXT_FIELD,
};

const MAX_FILE: u64 = 4096;
const MAX_REQUEST: u64 = 16384;
const MAX_FILES: usize = 3;
const IMAGE_BOUND: u32 = 16;

fn allowed() -> Vec<String> {
    ["image/png", "image/gif", "text/*", "application/pdf"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

fn policy(flags: u8) -> UploadPolicy {
    let mut save = SaveOptions::new();
    save = match flags & 3 {
        0 => save,
        1 => save.upload_to(UploadTo::template("up/%Y/%m/")),
        2 => save.upload_to(UploadTo::uuid("u")),
        _ => save.keep_name(true),
    };
    if flags & 0x80 != 0 {
        save = save.max_length(40);
    }
    let mut policy = UploadPolicy::new()
        .max_file_size(MAX_FILE)
        .max_request_size(MAX_REQUEST)
        .max_files(MAX_FILES)
        .save_options(save);
    if flags & 4 != 0 {
        let mut images = ImagePolicy::new();
        if flags & 8 != 0 {
            images = images.max_size(IMAGE_BOUND, IMAGE_BOUND);
        }
        policy = policy.images(images);
    }
    if flags & 0x10 != 0 {
        policy = policy.allowed_types(allowed());
    }
    if flags & 0x20 != 0 {
        policy = policy.field("file");
    }
    policy
}

/// What an outcome says, without the random parts of stored names.
fn summary(result: &Result<Upload, Error>) -> String {
    match result {
        Err(e) => format!("Err({})", status_for(e)),
        Ok(upload) => {
            let files: Vec<_> = upload
                .files
                .iter()
                .map(|f| {
                    (
                        &f.field,
                        &f.client_filename,
                        f.meta.size,
                        &f.meta.content_type,
                        f.image,
                    )
                })
                .collect();
            format!("Ok({files:?}, {:?})", upload.fields)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, chunk, cut, rest @ ..] = data else {
        return;
    };
    let (flags, chunk, cut) = (*flags, usize::from(*chunk), usize::from(*cut));
    let (content_type, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let content_type = String::from_utf8_lossy(content_type);
    let content_type = content_type.trim_end_matches('\r');

    let fail_at = (flags & 0x40 != 0).then_some(body.len() * cut / 256);
    let mut pieces: Vec<Result<Bytes, std::io::Error>> = Vec::new();
    let size = if chunk == 0 { body.len().max(1) } else { chunk };
    let mut offset = 0;
    for piece in body.chunks(size) {
        if fail_at.is_some_and(|at| offset + piece.len() > at) {
            let keep = fail_at.unwrap_or(0) - offset;
            pieces.push(Ok(Bytes::copy_from_slice(&piece[..keep])));
            pieces.push(Err(std::io::Error::other("connection reset")));
            break;
        }
        pieces.push(Ok(Bytes::copy_from_slice(piece)));
        offset += piece.len();
    }
    let stream = futures::stream::iter(pieces);

    let policy = policy(flags);
    let storage = InMemoryStorage::new();
    let result = block_on(save_multipart(&storage, content_type, stream, &policy));

    // The same body in one piece must give the same answer: how a client's bytes are split into
    // reads must never matter (the framing scanner and the parser carry state across chunks).
    // Only for bodies within the request limit, where no limit can trip at a chunk-dependent
    // moment.
    if fail_at.is_none() && chunk != 0 && body.len() as u64 <= MAX_REQUEST {
        let whole = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::copy_from_slice(body))]);
        let again = InMemoryStorage::new();
        let other = block_on(save_multipart(&again, content_type, whole, &policy));
        assert_eq!(
            summary(&result),
            summary(&other),
            "the outcome depends on chunking (chunks of {chunk} vs one)"
        );
    }
    if debug() {
        eprintln!("flags {flags:#04x}: {result:#?}");
    }
    let upload = match result {
        Err(e) => {
            assert!(
                storage.is_empty(),
                "all-or-nothing broken: {} file(s) left after {e:?}",
                storage.len()
            );
            return;
        }
        Ok(upload) => upload,
    };
    assert_eq!(
        storage.len(),
        upload.files.len(),
        "storage holds {} files, upload reports {}",
        storage.len(),
        upload.files.len()
    );
    assert!(upload.files.len() <= MAX_FILES, "more than max_files stored");
    let mut total = 0u64;
    for file in &upload.files {
        let meta = &file.meta;
        check_name(&meta.name, "save_multipart");
        assert!(meta.size <= MAX_FILE, "{} bytes > max_file_size", meta.size);
        total += meta.size;
        let stored = block_on(storage.metadata(&meta.name))
            .unwrap_or_else(|e| panic!("reported file {:?} not stored: {e}", meta.name));
        assert_eq!(stored.size, meta.size, "stored size differs from the reported one");
        let bytes = block_on(storage.read_to_bytes(meta.name.as_str()))
            .unwrap_or_else(|e| panic!("cannot read back {:?}: {e}", meta.name));
        assert_eq!(bytes.len() as u64, meta.size, "read-back size");
        assert!(
            !file.client_filename.contains('/') && !file.client_filename.contains('\\'),
            "client filename not a basename: {:?}",
            file.client_filename
        );
        if flags & 0x20 != 0 {
            assert_eq!(file.field, "file", "stored a file from another field");
        }
        match flags & 3 {
            1 => assert!(meta.name.as_str().starts_with("up/"), "upload_to ignored"),
            2 => assert_eq!(meta.name.dir(), "u", "uuid upload_to ignored"),
            _ => {}
        }
        if flags & 0x80 != 0 {
            assert!(meta.name.char_len() <= 40, "max_length ignored: {:?}", meta.name);
        }
        if flags & 4 != 0 {
            let image = file
                .image
                .unwrap_or_else(|| panic!("image policy but no image size for {:?}", meta.name));
            if flags & 8 != 0 {
                assert!(
                    image.width <= IMAGE_BOUND && image.height <= IMAGE_BOUND,
                    "image {}x{} over the bound",
                    image.width,
                    image.height
                );
            }
        }
        if flags & 0x10 != 0 {
            let ct = meta.content_type.as_deref().unwrap_or_default();
            assert!(type_matches(ct, &allowed()), "type {ct:?} not allowed");
        }
    }
    assert!(total <= MAX_REQUEST, "{total} bytes stored > max_request_size");
    for (_, value) in &upload.fields {
        assert!(value.len() <= MAX_TEXT_FIELD, "text field over MAX_TEXT_FIELD");
    }
});
