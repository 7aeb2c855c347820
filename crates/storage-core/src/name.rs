//! [`Name`]: a storage name that has passed the path-safety rules.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The longest name any backend accepts, in bytes (the database column is this wide).
pub const MAX_NAME_BYTES: usize = 1024;

/// A validated, normalized storage name such as `photos/2024/cat.jpg`.
///
/// Every [`Storage`](crate::Storage) method takes a `&Name`, so a backend can never be handed an
/// unsafe path. Building one applies Django's path rules and a few more:
///
/// - backslashes become `/` (all names are POSIX style, as in Django);
/// - a name whose last part is empty, `.` or `..` is refused as [`Error::InvalidName`]
///   ("could not derive a file name");
/// - absolute paths, `..` parts, drive prefixes (`C:`), NUL and other control characters are
///   refused as [`Error::SuspiciousPath`];
/// - empty and `.` parts are dropped (`./a//b` is `a/b`);
/// - at most [`MAX_NAME_BYTES`] bytes.
///
/// ```
/// use storage_core::{Error, Name};
///
/// assert_eq!(Name::new("photos/./2024//cat.jpg")?.as_str(), "photos/2024/cat.jpg");
/// assert_eq!(Name::new(r"docs\report.pdf")?.as_str(), "docs/report.pdf");
/// assert!(matches!(Name::new("../etc/passwd"), Err(Error::SuspiciousPath { .. })));
/// assert!(matches!(Name::new("/etc/passwd"), Err(Error::SuspiciousPath { .. })));
/// assert!(matches!(Name::new("photos/"), Err(Error::InvalidName { .. })));
/// # Ok::<(), storage_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Validates and normalizes `name`.
    pub fn new(name: impl AsRef<str>) -> Result<Self> {
        let raw = name.as_ref();
        if raw.contains('\0') {
            return Err(Error::suspicious(raw, "contains a NUL character"));
        }
        if raw.chars().any(char::is_control) {
            return Err(Error::suspicious(raw, "contains a control character"));
        }
        let posix = raw.replace('\\', "/");
        let base = basename(&posix);
        if base.is_empty() || base == "." || base == ".." {
            return Err(Error::invalid(raw, "could not derive a file name"));
        }
        if posix.starts_with('/') {
            return Err(Error::suspicious(raw, "absolute paths are not allowed"));
        }
        if posix.split('/').any(|part| part == "..") {
            return Err(Error::suspicious(
                raw,
                "path traversal ('..') is not allowed",
            ));
        }
        let normalized = posix
            .split('/')
            .filter(|part| !part.is_empty() && *part != ".")
            .collect::<Vec<_>>()
            .join("/");
        // Checked again once `./` and empty parts are gone (`./C:/x` is `C:/x`), and for every
        // part: on Windows a joined `C:` part replaces the root it is joined to.
        if normalized.split('/').any(has_drive_prefix) {
            return Err(Error::suspicious(raw, "drive prefixes are not allowed"));
        }
        if normalized.len() > MAX_NAME_BYTES {
            return Err(Error::invalid(
                raw,
                format!("longer than {MAX_NAME_BYTES} bytes"),
            ));
        }
        Ok(Self(normalized))
    }

    /// The name as a string, `/`-separated, never starting or ending with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The directory part (`photos/2024` for `photos/2024/cat.jpg`), empty at the root.
    pub fn dir(&self) -> &str {
        self.0.rsplit_once('/').map_or("", |(dir, _)| dir)
    }

    /// The last part (`cat.jpg` for `photos/2024/cat.jpg`).
    pub fn file_name(&self) -> &str {
        basename(&self.0)
    }

    /// The parts between slashes.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The name's length in characters, the unit Django's `max_length` counts.
    pub fn char_len(&self) -> usize {
        self.0.chars().count()
    }

    /// Whether `entry`, found by listing the directory `dir` of a backend that does not hold
    /// only names (a filesystem, an object store), is one this storage could hand back as is:
    /// a single part that [`Name::new`] keeps unchanged under `dir`. A backslash (read as `/`,
    /// so the entry would stand for another file), control characters, `.`/`..` or a name too
    /// long are not; listings leave such entries out, since no name can reach them.
    ///
    /// ```
    /// use storage_core::Name;
    ///
    /// let docs = Name::new("docs")?;
    /// assert!(Name::is_listable(Some(&docs), "report.pdf"));
    /// assert!(!Name::is_listable(Some(&docs), r"..\secret.txt"));
    /// assert!(!Name::is_listable(None, "a\tb"));
    /// assert!(!Name::is_listable(None, ".."));
    /// # Ok::<(), storage_core::Error>(())
    /// ```
    pub fn is_listable(dir: Option<&Name>, entry: &str) -> bool {
        Self::listed(dir, entry).is_some()
    }

    /// The name of `entry` in `dir` when [`Name::is_listable`] holds, else `None`.
    pub fn listed(dir: Option<&Name>, entry: &str) -> Option<Name> {
        if entry.is_empty() || entry.contains(['/', '\\']) {
            return None;
        }
        let full = match dir {
            Some(dir) => format!("{dir}/{entry}"),
            None => entry.to_owned(),
        };
        Name::new(&full).ok().filter(|name| name.0 == full)
    }

    /// True when `self` lies under the directory `dir` (`None` is the root, which holds everything).
    pub fn is_in_dir(&self, dir: Option<&Name>) -> bool {
        match dir {
            None => true,
            Some(dir) => self
                .0
                .strip_prefix(dir.as_str())
                .is_some_and(|rest| rest.starts_with('/')),
        }
    }
}

/// Everything after the last `/`.
pub(crate) fn basename(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, base)| base)
}

fn has_drive_prefix(path: &str) -> bool {
    let mut chars = path.chars();
    matches!((chars.next(), chars.next()), (Some(letter), Some(':')) if letter.is_ascii_alphabetic())
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<&str> for Name {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<String> for Name {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> Self {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str) -> &'static str {
        match Name::new(name) {
            Ok(_) => "ok",
            Err(Error::SuspiciousPath { .. }) => "suspicious",
            Err(Error::InvalidName { .. }) => "invalid",
            Err(_) => "other",
        }
    }

    #[test]
    fn normalizes_like_posix_normpath() {
        let cases = [
            ("a.txt", "a.txt"),
            ("./a.txt", "a.txt"),
            ("a//b/./c.txt", "a/b/c.txt"),
            (r"some\path\x.txt", "some/path/x.txt"),
            (r".\.\x", "x"),
            ("dotted.path/.test", "dotted.path/.test"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Name::new(input).map(String::from).ok().as_deref(),
                Some(expected),
                "{input}"
            );
        }
    }

    #[test]
    fn django_dangerous_paths_cannot_derive_a_name() {
        // Django's GenerateFilenameStorageTests.test_storage_dangerous_paths.
        for name in [
            "/tmp/..",
            r"\tmp\..",
            "/tmp/.",
            r"\tmp\.",
            "..",
            ".",
            "",
            "some/folder/",
        ] {
            assert_eq!(kind(name), "invalid", "{name:?}");
        }
    }

    #[test]
    fn django_traversal_in_dir_name_is_suspicious() {
        // Django's test_storage_dangerous_paths_dir_name, plus absolute paths and drive prefixes.
        for name in [
            "../path",
            r"..\path",
            "tmp/../path",
            r"tmp\..\path",
            "/tmp/../path",
            r"\tmp\..\path",
            "/etc/passwd",
            "//server/share/x",
            r"C:\Windows\x.txt",
            "C:/Windows/x.txt",
            "c:x.txt",
            "a/\0b",
            "a\nb",
            "x\u{7f}",
        ] {
            assert_eq!(kind(name), "suspicious", "{name:?}");
        }
    }

    #[test]
    fn length_is_capped_in_bytes() {
        assert_eq!(kind(&"a".repeat(MAX_NAME_BYTES)), "ok");
        assert_eq!(kind(&"a".repeat(MAX_NAME_BYTES + 1)), "invalid");
        // Multi-byte characters count by bytes.
        assert_eq!(kind(&"é".repeat(MAX_NAME_BYTES / 2 + 1)), "invalid");
    }

    /// Found by fuzzing: the drive-prefix rule holds after normalizing and for every part
    /// (on Windows a joined `C:` part would replace the root).
    #[test]
    fn drive_prefixes_are_refused_in_any_part() {
        for name in ["./a:", "./C:/x", "a/C:/x", ".//d:x"] {
            assert!(
                matches!(Name::new(name), Err(Error::SuspiciousPath { .. })),
                "{name}"
            );
        }
        assert!(
            Name::new("a/bb:c").is_ok(),
            "a colon later in a part is fine"
        );
    }

    #[test]
    fn parts_and_dirs() -> Result<()> {
        let name = Name::new("photos/2024/cat.jpg")?;
        assert_eq!(name.dir(), "photos/2024");
        assert_eq!(name.file_name(), "cat.jpg");
        assert!(name.is_in_dir(Some(&Name::new("photos")?)));
        assert!(!name.is_in_dir(Some(&Name::new("photo")?)));
        assert!(name.is_in_dir(None));
        assert_eq!(Name::new("top.txt")?.dir(), "");
        Ok(())
    }
}
