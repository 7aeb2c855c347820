//! Django's own answers, replayed: `tests/django/django_names.json` holds what Django 5.2 returns
//! for 456 names (curated edge cases plus a seeded random corpus), produced by
//! `tests/django/generate_fixtures.py`. Every case must match, except where storage-core is
//! deliberately stricter; those exceptions are listed in `stricter_than_django`.

// Indexing a serde_json `Value` yields `Null` for a missing key; it never panics.
#![allow(clippy::indexing_slicing)]

use serde_json::Value;
use storage_core::naming::{
    generate_filename, get_valid_name, sanitize_upload_filename, split_extensions,
};
use storage_core::{media_url, Error, Name, UploadTo, MAX_NAME_BYTES};

const FIXTURES: &str = include_str!("django/django_names.json");

fn kind<T: ToString>(result: &Result<T, Error>) -> Value {
    match result {
        Ok(v) => serde_json::json!({ "ok": v.to_string() }),
        Err(Error::InvalidName { .. }) => serde_json::json!({ "err": "invalid" }),
        Err(Error::SuspiciousPath { .. }) => serde_json::json!({ "err": "suspicious" }),
        Err(e) => serde_json::json!({ "err": "other", "message": e.to_string() }),
    }
}

/// Where we refuse what Django accepts, on purpose: names with control characters, absolute
/// results, drive prefixes, and names longer than the database column.
fn stricter_than_django(input: &str, django_ok: &str, ours: &Value) -> bool {
    let refused_as = |k: &str| ours.get("err").and_then(Value::as_str) == Some(k);
    // A drive prefix in any part (on Windows a joined `C:` part replaces the root).
    let drive = django_ok.split('/').any(|part| {
        let mut chars = part.chars();
        matches!((chars.next(), chars.next()), (Some(c), Some(':')) if c.is_ascii_alphabetic())
    });
    (refused_as("suspicious")
        && (input.chars().any(char::is_control) || django_ok.starts_with('/') || drive))
        || (refused_as("invalid") && django_ok.len() > MAX_NAME_BYTES)
}

#[test]
fn naming_rules_match_django_on_its_own_answers() -> Result<(), Box<dyn std::error::Error>> {
    let fixtures: Value = serde_json::from_str(FIXTURES)?;
    let cases = fixtures["cases"].as_array().ok_or("no cases")?;
    assert!(cases.len() > 400, "fixture corpus is too small");
    let field = UploadTo::template("some/folder/");
    let mut mismatches = Vec::new();
    let mut stricter = 0;
    for case in cases {
        let input = case["input"].as_str().ok_or("input")?;
        let checks = [
            ("get_valid_name", kind(&get_valid_name(input))),
            ("generate_filename", kind(&generate_filename(input))),
            (
                "field_generate_filename",
                kind(&field.generate_filename(input)),
            ),
        ];
        for (what, ours) in checks {
            let django = &case[what];
            if *django == ours {
                continue;
            }
            match django.get("ok").and_then(Value::as_str) {
                Some(ok) if stricter_than_django(input, ok, &ours) => stricter += 1,
                _ => mismatches.push(format!("{what}({input:?}): django {django}, ours {ours}")),
            }
        }
        let upload = sanitize_upload_filename(input);
        if case["sanitize_upload_filename"].as_str() != upload.as_deref() {
            mismatches.push(format!(
                "sanitize_upload_filename({input:?}): django {}, ours {upload:?}",
                case["sanitize_upload_filename"]
            ));
        }
        let url = media_url("/media/", input);
        let django_url = format!("/media/{}", case["url_path"].as_str().ok_or("url")?);
        if url != django_url {
            mismatches.push(format!("url({input:?}): django {django_url}, ours {url}"));
        }
        let suffixes = split_extensions(&input.replace('/', "_")).1.to_owned();
        if case["suffixes"].as_str() != Some(suffixes.as_str()) {
            mismatches.push(format!(
                "suffixes({input:?}): django {}, ours {suffixes:?}",
                case["suffixes"]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // The exceptions stay exceptions: if Django's corpus stopped exercising them, this would
    // silently test less.
    assert!(stricter > 0, "no case exercised the deliberate differences");
    Ok(())
}

#[test]
fn every_generated_name_is_a_valid_name() -> Result<(), Box<dyn std::error::Error>> {
    let fixtures: Value = serde_json::from_str(FIXTURES)?;
    for case in fixtures["cases"].as_array().ok_or("no cases")? {
        let input = case["input"].as_str().ok_or("input")?;
        if let Ok(name) = generate_filename(input) {
            assert_eq!(Name::new(name.as_str())?, name, "{input:?} is not stable");
        }
    }
    Ok(())
}
