//! Storage names: `Name::new`, `naming::{get_valid_name, generate_filename, validate_file_name,
//! sanitize_upload_filename}`, `UploadTo::template(..)` / `UploadTo::uuid(..)` with
//! `generate_filename_at`, and `NameCandidates` (collision alternatives under `max_length`).
//!
//! Input: byte 0 = max_length (0: none), byte 1 = flags (bits 0-1: the date for strftime, bit 2:
//! overwrite), then fields split on 0xFF: the file name, the `upload_to` template / uuid dir.
//!
//! Invariants: never panics; every accepted `Name` is relative, has no empty, `.` or `..` part,
//! no NUL/control character, no backslash, no drive prefix, at most MAX_NAME_BYTES, and
//! `Name::new(n.as_str()) == n`; cleaned parts hold only letters, digits, `-`, `_`, `.`; a
//! sanitized upload filename has no `/` or `\` and at most 255 characters; uuid names are a
//! uuid and a short lower-case extension in the given directory; alternatives fit max_length.

#![no_main]

use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use storage_core::naming::{
    generate_filename, get_valid_name, sanitize_upload_filename, validate_file_name,
    MAX_UPLOAD_FILENAME_CHARS,
};
use storage_core::{Error, Name, NameCandidates, UploadTo};
use storage_fuzz::{check_name, split_fields};
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// What `get_valid_name` may leave: Python's `\w` (letters, numbers, `_`), `-` and `.`.
fn check_clean_part(part: &str, what: &str) {
    assert!(
        !part.is_empty() && part != "." && part != "..",
        "{what}: unusable part {part:?}"
    );
    for c in part.chars() {
        // Outside ASCII, by the Unicode tables `get_valid_name` uses (std's may be older).
        let word = if c.is_ascii() {
            c.is_ascii_alphanumeric()
        } else {
            !c.is_whitespace()
                && !c.is_control()
                && matches!(
                    c.general_category_group(),
                    GeneralCategoryGroup::Letter | GeneralCategoryGroup::Number
                )
        };
        assert!(
            word || matches!(c, '-' | '_' | '.'),
            "{what}: {c:?} left in {part:?}"
        );
    }
}

fn check_refusal(result: &Result<Name, Error>, what: &str) {
    if let Err(e) = result {
        assert!(
            matches!(e, Error::InvalidName { .. } | Error::SuspiciousPath { .. }),
            "{what}: refused with an unexpected error: {e:?}"
        );
    }
}

fn date(flags: u8) -> DateTime<Utc> {
    let (y, m, d) = match flags & 3 {
        0 => (2004, 3, 9),
        1 => (1970, 1, 1),
        2 => (9999, 12, 31),
        _ => (-50, 2, 28),
    };
    Utc.with_ymd_and_hms(y, m, d, 10, 11, 12)
        .single()
        .unwrap_or_default()
}

fn check_candidates(first: Name, max_length: Option<usize>, overwrite: bool) {
    let dir = first.dir().to_owned();
    let Ok(mut candidates) = NameCandidates::available(first, max_length, overwrite) else {
        return;
    };
    for round in 0..3 {
        let current = candidates.current();
        check_name(current, "NameCandidates");
        assert_eq!(current.dir(), dir, "NameCandidates: left the directory");
        if let Some(max) = max_length {
            assert!(
                current.char_len() <= max,
                "NameCandidates: {current:?} longer than max_length {max} (round {round})"
            );
        }
        if candidates.next_after_collision().is_err() {
            break;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [max_length, flags, rest @ ..] = data else {
        return;
    };
    let max_length = (*max_length != 0).then_some(usize::from(*max_length));
    let overwrite = flags & 4 != 0;
    let fields = split_fields(rest);
    let name = fields.first().map(String::as_str).unwrap_or_default();
    let dir = fields.get(1).map(String::as_str).unwrap_or_default();

    // Name::new
    let direct = Name::new(name);
    check_refusal(&direct, "Name::new");
    if let Ok(n) = &direct {
        check_name(n, "Name::new");
        assert!(
            !name.chars().any(char::is_control),
            "Name::new accepted a control character"
        );
        check_candidates(n.clone(), max_length, overwrite);
    }

    // get_valid_name
    if let Ok(valid) = get_valid_name(name) {
        check_clean_part(&valid, "get_valid_name");
        assert_eq!(
            get_valid_name(&valid).ok().as_deref(),
            Some(valid.as_str()),
            "get_valid_name not idempotent"
        );
    }

    // validate_file_name: Django's contract.
    for relative in [false, true] {
        if let Ok(ok) = validate_file_name(name, relative) {
            assert_eq!(ok, name);
            let posix = name.replace('\\', "/");
            // F4: the file name is what follows the last `/` or backslash.
            let base = posix.rsplit('/').next().unwrap_or_default();
            assert!(
                !base.is_empty() && base != "." && base != "..",
                "validate_file_name({relative}): no file name in {name:?}"
            );
            if relative {
                assert!(
                    !posix.starts_with('/') && !posix.split('/').any(|p| p == ".."),
                    "validate_file_name(true): traversal in {name:?}"
                );
            } else {
                assert!(!name.contains('/'), "validate_file_name(false): path in {name:?}");
                assert!(
                    !name.contains('\\'),
                    "validate_file_name(false): backslash path in {name:?} (F4)"
                );
            }
        }
    }

    // generate_filename
    let generated = generate_filename(name);
    check_refusal(&generated, "generate_filename");
    if let Ok(n) = &generated {
        check_name(n, "generate_filename");
        check_clean_part(n.file_name(), "generate_filename");
        check_candidates(n.clone(), max_length, overwrite);
    }

    // sanitize_upload_filename
    if let Some(safe) = sanitize_upload_filename(name) {
        assert!(
            !safe.contains('/') && !safe.contains('\\'),
            "sanitize_upload_filename: separator left in {safe:?}"
        );
        assert!(
            !safe.is_empty() && safe != "." && safe != "..",
            "sanitize_upload_filename: unusable {safe:?}"
        );
        assert!(
            safe.chars().count() <= MAX_UPLOAD_FILENAME_CHARS,
            "sanitize_upload_filename: too long"
        );
        assert!(
            !safe.chars().any(char::is_control),
            "sanitize_upload_filename: control character in {safe:?}"
        );
        if let Ok(n) = generate_filename(&safe) {
            check_name(&n, "generate_filename(sanitized)");
        }
    }

    // upload_to as a strftime template
    let now = date(*flags);
    // F6: a template chrono parses but cannot format (`%#z`) is an error, not a panic.
    let templated = UploadTo::template(dir).generate_filename_at(name, now);
    check_refusal(&templated, "UploadTo::template");
    if let Ok(n) = &templated {
        check_name(n, "UploadTo::template");
        check_clean_part(n.file_name(), "UploadTo::template");
    }

    // upload_to as uuid names
    let uuid = UploadTo::uuid(dir).generate_filename_at(name, now);
    check_refusal(&uuid, "UploadTo::uuid");
    match &uuid {
        Ok(n) => {
            check_name(n, "UploadTo::uuid");
            let file = n.file_name();
            let (id, ext) = file.split_once('.').unwrap_or((file, ""));
            assert!(
                id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "UploadTo::uuid: {file:?} is not a uuid name"
            );
            assert!(
                ext.len() <= 10
                    && ext
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
                "UploadTo::uuid: extension {ext:?}"
            );
        }
        Err(e) => {
            // A clean directory (or none) always gives a name, whatever the client sent.
            // (Short enough that a uuid name still fits in MAX_NAME_BYTES.)
            let clean_dir = dir.is_empty()
                || (dir.len() <= 900 && Name::new(dir).is_ok_and(|d| d.as_str() == dir));
            assert!(!clean_dir, "UploadTo::uuid({dir:?}) refused {name:?}: {e}");
        }
    }
    if let Ok(n) = &uuid {
        if !dir.is_empty() && Name::new(dir).is_ok_and(|d| d.as_str() == dir) {
            assert_eq!(n.dir(), dir, "UploadTo::uuid: wrong directory");
        }
    }
});
