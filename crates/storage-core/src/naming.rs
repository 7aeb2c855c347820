//! Django's naming rules, written once: valid names, `upload_to`, available names on collision,
//! `max_length`, and safe basenames for client-supplied upload filenames.
//!
//! Each function names the Django function it follows (`django/core/files/storage/base.py`,
//! `django/utils/text.py`, `django/db/models/fields/files.py`,
//! `django/http/multipartparser.py`, `django/core/files/uploadedfile.py`).

use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

use crate::error::{Error, Result};
use crate::name::{basename, Name};

/// Length of the random part Django adds to a taken name (`x_ab12Cd9.txt`).
pub const RANDOM_SUFFIX_LEN: usize = 7;

/// How many alternative names a save tries before giving up with [`Error::AlreadyExists`].
/// With 62^7 random suffixes, reaching it means something other than bad luck is wrong.
pub const MAX_NAME_ATTEMPTS: u32 = 100;

/// The longest client-supplied upload filename kept, in characters.
pub const MAX_UPLOAD_FILENAME_CHARS: usize = 255;

/// Django's `get_valid_filename`: strip surrounding whitespace, turn spaces into `_`, drop every
/// character that is not a letter, digit, `_`, `-` or `.`.
///
/// ```
/// use storage_core::naming::get_valid_name;
/// assert_eq!(get_valid_name("john's portrait in 2004.jpg")?, "johns_portrait_in_2004.jpg");
/// assert!(get_valid_name("???").is_err());
/// # Ok::<(), storage_core::Error>(())
/// ```
pub fn get_valid_name(name: &str) -> Result<String> {
    let cleaned: String = name
        .trim_matches(is_python_whitespace)
        .chars()
        .map(|c| if c == ' ' { '_' } else { c })
        .filter(|&c| c == '-' || c == '.' || is_word_char(c))
        .collect();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        return Err(Error::invalid(name, "could not derive a file name"));
    }
    Ok(cleaned)
}

/// Python's `\w` on `str`: letters, numbers and `_`.
fn is_word_char(c: char) -> bool {
    c == '_'
        || matches!(
            c.general_category_group(),
            GeneralCategoryGroup::Letter | GeneralCategoryGroup::Number
        )
}

/// Python's `str.isspace`, which also counts the ASCII separators U+001C..U+001F.
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.isprintable`: no control, format, surrogate, private-use, unassigned or separator
/// characters, except the plain space.
fn is_python_printable(c: char) -> bool {
    c == ' '
        || !matches!(
            c.general_category_group(),
            GeneralCategoryGroup::Other | GeneralCategoryGroup::Separator
        )
}

/// Django's `validate_file_name`: the last part must not be empty, `.` or `..`; with
/// `allow_relative_path`, the name may have directories but must not be absolute or contain `..`;
/// without it, the name must be a bare file name.
pub fn validate_file_name(name: &str, allow_relative_path: bool) -> Result<&str> {
    let unusable = |base: &str| base.is_empty() || base == "." || base == "..";
    if unusable(basename(name)) {
        return Err(Error::invalid(name, "could not derive a file name"));
    }
    // Django's checks, in its order; a backslash then counts as a separator too, as everywhere
    // in this crate (`Name` turns it into `/`).
    let posix = name.replace('\\', "/");
    let traversal = posix.starts_with('/') || posix.split('/').any(|part| part == "..");
    if allow_relative_path && traversal {
        return Err(Error::suspicious(name, "path traversal attempt"));
    }
    let base = basename(&posix);
    if unusable(base) {
        return Err(Error::invalid(name, "could not derive a file name"));
    }
    if !allow_relative_path && base != posix {
        return Err(Error::suspicious(
            name,
            "the file name includes path elements",
        ));
    }
    Ok(name)
}

/// Django's `Storage.generate_filename`: clean the last part with [`get_valid_name`] and normalize
/// the path. Backslashes count as `/`; `..` in the directory is refused.
///
/// ```
/// use storage_core::naming::generate_filename;
/// assert_eq!(generate_filename(r"some\.\path\UnTRIVíAL @fil$ena#me!")?.as_str(),
///            "some/path/UnTRIVíAL_filename");
/// # Ok::<(), storage_core::Error>(())
/// ```
pub fn generate_filename(filename: &str) -> Result<Name> {
    // Cleaning would drop these silently; a name carrying them is refused instead.
    if filename.chars().any(char::is_control) {
        return Err(Error::suspicious(
            filename,
            "contains a NUL or control character",
        ));
    }
    let posix = filename.replace('\\', "/");
    let (dir, file) = posix.rsplit_once('/').unwrap_or(("", posix.as_str()));
    if dir.split('/').any(|part| part == "..") {
        return Err(Error::suspicious(dir, "path traversal attempt"));
    }
    let valid = get_valid_name(file)?;
    // Django returns absolute names here and refuses them at save; refuse them at once.
    if posix.starts_with('/') {
        return Err(Error::suspicious(
            filename,
            "absolute paths are not allowed",
        ));
    }
    Name::new(posix_join(dir, &valid))
}

/// Python's `posixpath.join(a, b)` for two parts.
fn posix_join(dir: &str, file: &str) -> String {
    if file.starts_with('/') || dir.is_empty() {
        file.to_owned()
    } else if dir.ends_with('/') {
        format!("{dir}{file}")
    } else {
        format!("{dir}/{file}")
    }
}

/// Splits a file name into its root and all its extensions, as Django does with pathlib's
/// `suffixes`: `x.tar.gz` is (`x`, `.tar.gz`), `.bashrc` and `name.` have no extension.
pub fn split_extensions(file_name: &str) -> (&str, &str) {
    if file_name.ends_with('.') {
        return (file_name, "");
    }
    let stripped = file_name.trim_start_matches('.');
    let lead = file_name.len() - stripped.len();
    match stripped.find('.') {
        Some(dot) => file_name.split_at(lead + dot),
        None => (file_name, ""),
    }
}

/// The extension a file of `content_type` is stored with when the client's own does not fit:
/// `jpg` for `image/jpeg`, `txt` for `text/plain`, the subtype where `mime_guess` knows it as an
/// extension, and `bin` for a type nothing is known of (served as a download everywhere).
pub fn extension_for_type(content_type: &str) -> &'static str {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let preferred = match essence.as_str() {
        "image/jpeg" => Some("jpg"),
        "image/tiff" => Some("tif"),
        "image/x-icon" | "image/vnd.microsoft.icon" => Some("ico"),
        "image/vnd.adobe.photoshop" => Some("psd"),
        "image/svg+xml" => Some("svg"),
        "text/plain" => Some("txt"),
        "text/markdown" => Some("md"),
        "application/gzip" => Some("gz"),
        "audio/mpeg" => Some("mp3"),
        _ => None,
    };
    if let Some(ext) = preferred {
        return ext;
    }
    let subtype = essence.split_once('/').map_or("", |(_, sub)| sub);
    match mime_guess::get_mime_extensions_str(&essence) {
        Some(exts) => exts
            .iter()
            .find(|ext| **ext == subtype)
            .or_else(|| exts.first())
            .copied()
            .unwrap_or("bin"),
        None => "bin",
    }
}

/// Other spellings of a type's own extension that are kept as the client wrote them. Only
/// these: `mime_guess` also maps `cmd`, `reg` or `ini` to `text/plain`, and a client that picks
/// its extension must not pick one a server runs or reads as configuration.
const EXTENSION_ALIASES: &[(&str, &[&str])] = &[
    ("image/jpeg", &["jpeg", "jpe", "jfif"]),
    ("image/tiff", &["tiff"]),
    ("image/heif", &["heic"]),
    ("text/markdown", &["markdown"]),
    ("text/html", &["htm"]),
    ("text/yaml", &["yml"]),
    ("application/yaml", &["yml"]),
    ("video/mpeg", &["mpeg"]),
    ("audio/midi", &["midi"]),
];

/// Whether `ext` (without the dot, any case) is the extension of `content_type`, or one of its
/// few other spellings.
fn extension_fits(ext: &str, content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    !ext.is_empty()
        && (ext.eq_ignore_ascii_case(extension_for_type(&essence))
            || EXTENSION_ALIASES
                .iter()
                .filter(|(of, _)| *of == essence)
                .any(|(_, aliases)| aliases.iter().any(|a| ext.eq_ignore_ascii_case(a))))
}

/// `filename` with an extension that says what the bytes are: kept when its last extension is
/// `content_type`'s ([`extension_for_type`], or a usual other spelling: `photo.JPEG` stays for
/// `image/jpeg`); otherwise every extension goes and the type's own takes their place
/// (`me.html` holding a PNG becomes `me.png`, `shell.php.html` becomes `shell.png`, `avatar`
/// becomes `avatar.png`). A web server, CDN or browser that goes by the extension then treats
/// the file as what it is, not as what the client named it.
///
/// ```
/// use storage_core::naming::with_type_extension;
/// assert_eq!(with_type_extension("me.html", "image/png"), "me.png");
/// assert_eq!(with_type_extension("avatars/Me.JPEG", "image/jpeg"), "avatars/Me.JPEG");
/// assert_eq!(with_type_extension("notes", "text/plain"), "notes.txt");
/// ```
pub fn with_type_extension(filename: &str, content_type: &str) -> String {
    let cut = filename.rfind(['/', '\\']).map_or(0, |at| at + 1);
    let (dir, file) = filename.split_at(cut);
    let (_, ext) = split_last_extension(file);
    if extension_fits(ext.trim_start_matches('.'), content_type) {
        return filename.to_owned();
    }
    // All of them: an inner `.php` in `shell.php.png` is one some servers still act on.
    let (root, _) = split_extensions(file);
    let root = match root.trim_end_matches('.') {
        "" => root,
        trimmed => trimmed,
    };
    format!("{dir}{root}.{}", extension_for_type(content_type))
}

/// Python's `os.path.splitext`: only the last extension, leading dots are not one.
fn split_last_extension(file_name: &str) -> (&str, &str) {
    match file_name.rfind('.') {
        Some(dot) if file_name[..dot].chars().any(|c| c != '.') => file_name.split_at(dot),
        _ => (file_name, ""),
    }
}

fn random_suffix() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), RANDOM_SUFFIX_LEN)
}

fn drop_last_chars(s: &str, count: usize) -> &str {
    let keep = s.chars().count().saturating_sub(count);
    s.char_indices().nth(keep).map_or(s, |(idx, _)| &s[..idx])
}

/// The names a create-only save may publish under: the requested name first, then Django's
/// alternatives (`_` and seven random letters or digits before all extensions), each fitted to
/// `max_length` by shortening the root.
///
/// A backend stages the content once and then tries [`current`](Self::current); when that name
/// is taken it calls [`next_after_collision`](Self::next_after_collision) and tries again. The
/// database's unique index or the filesystem's exclusive link decides each try, so two writers
/// racing for one name both keep their bytes under different names.
#[derive(Debug, Clone)]
pub struct NameCandidates {
    dir: String,
    root: String,
    ext: String,
    max_length: Option<usize>,
    overwrite: bool,
    exact: bool,
    attempts: u32,
    current: Name,
}

impl NameCandidates {
    /// Only `name`: a collision is [`Error::AlreadyExists`].
    pub fn exact(name: Name) -> Self {
        Self {
            dir: String::new(),
            root: String::new(),
            ext: String::new(),
            max_length: None,
            overwrite: false,
            exact: true,
            attempts: 0,
            current: name,
        }
    }

    /// Django's `get_available_name`: `name`, or if it is longer than `max_length` characters, the
    /// first alternative that fits. With `overwrite` (Django 5.1's `allow_overwrite`) alternatives
    /// keep the name and only shorten it.
    ///
    /// ```
    /// use storage_core::{naming::NameCandidates, Name};
    /// let overwrite = NameCandidates::available(Name::new("test_long_file_name.txt")?, Some(10), true)?;
    /// assert_eq!(overwrite.current().as_str(), "test_l.txt");
    /// assert!(NameCandidates::available(Name::new("file_name.longext")?, Some(5), true).is_err());
    /// # Ok::<(), storage_core::Error>(())
    /// ```
    pub fn available(name: Name, max_length: Option<usize>, overwrite: bool) -> Result<Self> {
        let dir = name.dir().to_owned();
        let (root, ext) = split_extensions(name.file_name());
        let mut candidates = Self {
            root: root.to_owned(),
            ext: ext.to_owned(),
            dir,
            max_length,
            overwrite,
            exact: false,
            attempts: 0,
            current: name,
        };
        if candidates.too_long(&candidates.current) {
            candidates.advance()?;
        }
        Ok(candidates)
    }

    /// The name to try now.
    pub fn current(&self) -> &Name {
        &self.current
    }

    /// The current name was taken: move to the next alternative and return it.
    pub fn next_after_collision(&mut self) -> Result<&Name> {
        if self.exact || self.attempts >= MAX_NAME_ATTEMPTS {
            return Err(Error::AlreadyExists {
                name: self.current.to_string(),
            });
        }
        self.advance()?;
        Ok(&self.current)
    }

    /// How many alternatives were generated so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    fn too_long(&self, name: &Name) -> bool {
        self.max_length.is_some_and(|max| name.char_len() > max)
    }

    fn alternative(&self) -> Result<Name> {
        let file = if self.overwrite {
            format!("{}{}", self.root, self.ext)
        } else {
            format!("{}_{}{}", self.root, random_suffix(), self.ext)
        };
        Name::new(posix_join(&self.dir, &file))
    }

    // One turn of the loop in Django's get_available_name.
    fn advance(&mut self) -> Result<()> {
        self.attempts += 1;
        let mut name = self.alternative()?;
        if let Some(max) = self.max_length {
            let truncation = name.char_len().saturating_sub(max);
            if truncation > 0 {
                self.root = drop_last_chars(&self.root, truncation).to_owned();
                if self.root.is_empty() {
                    return Err(Error::invalid(
                        name.as_str(),
                        "storage can not find an available filename; \
                         make sure max_length allows a longer name",
                    ));
                }
                name = self.alternative()?;
            }
        }
        self.current = name;
        Ok(())
    }
}

/// Where uploaded files go: Django's `FileField.upload_to`.
#[derive(Clone)]
pub enum UploadTo {
    /// A directory as a strftime template, joined with the file name: `photos/%Y/%m/%d/`.
    /// Dates are taken in UTC.
    Template(String),
    /// A function from the client's file name to the full name, for example a uuid name.
    Func(Arc<dyn Fn(&str) -> String + Send + Sync>),
}

impl fmt::Debug for UploadTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Template(template) => f.debug_tuple("Template").field(template).finish(),
            Self::Func(_) => f.write_str("Func(..)"),
        }
    }
}

impl UploadTo {
    /// A strftime directory template such as `photos/%Y/%m/%d/`.
    pub fn template(template: impl Into<String>) -> Self {
        Self::Template(template.into())
    }

    /// A function from the client's file name to the full name.
    pub fn func(f: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        Self::Func(Arc::new(f))
    }

    /// Random uuid names under `dir`, keeping a short alphanumeric extension of the client's name
    /// in lower case: `profile_pics/0b8e...c1.png`.
    pub fn uuid(dir: impl Into<String>) -> Self {
        let dir = dir.into();
        Self::func(move |filename| {
            let posix = filename.replace('\\', "/");
            let (_, ext) = split_last_extension(basename(&posix));
            let ext = ext.trim_start_matches('.');
            let keep = !ext.is_empty()
                && ext.len() <= 10
                && ext.chars().all(|c| c.is_ascii_alphanumeric());
            let id = uuid::Uuid::new_v4().simple();
            let file = if keep {
                format!("{id}.{}", ext.to_ascii_lowercase())
            } else {
                id.to_string()
            };
            posix_join(&dir, &file)
        })
    }

    /// Django's `FileField.generate_filename`, dated now.
    pub fn generate_filename(&self, filename: &str) -> Result<Name> {
        self.generate_filename_at(filename, Utc::now())
    }

    /// Django's `FileField.generate_filename` at a given time: apply `upload_to`, check the result
    /// with [`validate_file_name`], then [`generate_filename`].
    pub fn generate_filename_at(&self, filename: &str, now: DateTime<Utc>) -> Result<Name> {
        let joined = match self {
            Self::Func(f) => f(filename),
            Self::Template(template) => {
                let items: Vec<Item<'_>> = StrftimeItems::new(template).collect();
                if items.iter().any(|item| matches!(item, Item::Error)) {
                    return Err(Error::invalid(template, "not a valid strftime template"));
                }
                // Some templates parse but cannot be formatted (`%#z`): an error, not a panic.
                let mut dir = String::new();
                write!(dir, "{}", now.format_with_items(items.into_iter()))
                    .map_err(|_| Error::invalid(template, "not a valid strftime template"))?;
                posix_join(&dir, filename)
            }
        };
        validate_file_name(&joined, true)?;
        generate_filename(&joined)
    }
}

/// Cuts a client-supplied upload filename to a safe basename, as Django's multipart parser and
/// `UploadedFile` do: HTML entities decoded, everything up to the last `/` or `\` dropped,
/// unprintable characters removed, at most 255 characters with the extension kept. `None` when
/// nothing usable is left.
///
/// ```
/// use storage_core::naming::sanitize_upload_filename;
/// for hostile in ["../../hax0rd.txt", "..&#x2F;hax0rd.txt", r"C:\Windows\hax0rd.txt"] {
///     assert_eq!(sanitize_upload_filename(hostile).as_deref(), Some("hax0rd.txt"));
/// }
/// assert_eq!(sanitize_upload_filename("/tmp/.."), None);
/// ```
pub fn sanitize_upload_filename(filename: &str) -> Option<String> {
    let decoded = html_escape::decode_html_entities(filename);
    let last = decoded.rsplit('/').next().unwrap_or_default();
    let last = last.rsplit('\\').next().unwrap_or_default();
    let printable: String = last.chars().filter(|&c| is_python_printable(c)).collect();
    if printable.is_empty() || printable == "." || printable == ".." {
        return None;
    }
    let name = if printable.chars().count() > MAX_UPLOAD_FILENAME_CHARS {
        let (root, ext) = split_last_extension(&printable);
        let ext: String = ext.chars().take(MAX_UPLOAD_FILENAME_CHARS).collect();
        let keep = MAX_UPLOAD_FILENAME_CHARS - ext.chars().count();
        let root: String = root.chars().take(keep).collect();
        root + &ext
    } else {
        printable
    };
    validate_file_name(&name, false).ok()?;
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_suffixed(name: &str, prefix: &str, ext: &str) -> bool {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(ext))
            .and_then(|middle| middle.strip_prefix('_'))
            .is_some_and(|random| {
                random.len() == RANDOM_SUFFIX_LEN
                    && random.chars().all(|c| c.is_ascii_alphanumeric())
            })
    }

    #[test]
    fn valid_name_matches_django_doctest() -> Result<()> {
        assert_eq!(
            get_valid_name("john's portrait in 2004.jpg")?,
            "johns_portrait_in_2004.jpg"
        );
        assert_eq!(
            get_valid_name("UnTRIVíAL @fil$ena#me!")?,
            "UnTRIVíAL_filename"
        );
        assert_eq!(get_valid_name("  spaced out  ")?, "spaced_out");
        assert_eq!(
            get_valid_name("日本語 ファイル.txt")?,
            "日本語_ファイル.txt"
        );
        for bad in ["", ".", "..", "???", "$.$.$", "   "] {
            assert!(
                matches!(get_valid_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn generate_filename_matches_django_valid_names() -> Result<()> {
        // Django's StorageGenerateFilenameTests.test_valid_names.
        let name = "UnTRIVíAL @fil$ena#me!";
        let valid = get_valid_name(name)?;
        let candidates = [
            (name.to_owned(), valid.clone()),
            (format!("././././././{name}"), valid.clone()),
            (format!("some/path/{name}"), format!("some/path/{valid}")),
            (
                format!("some/./path/./{name}"),
                format!("some/path/{valid}"),
            ),
            (
                format!("././some/././path/./{name}"),
                format!("some/path/{valid}"),
            ),
            (format!(r".\.\.\.\.\.\{name}"), valid.clone()),
            (format!(r"some\path\{name}"), format!("some/path/{valid}")),
            (
                format!(r"some\.\path\.\{name}"),
                format!("some/path/{valid}"),
            ),
            (
                format!(r".\.\some\.\.\path\.\{name}"),
                format!("some/path/{valid}"),
            ),
        ];
        for (input, expected) in candidates {
            assert_eq!(generate_filename(&input)?.as_str(), expected, "{input}");
        }
        Ok(())
    }

    #[test]
    fn generate_filename_refuses_django_dangerous_paths() {
        for name in ["/tmp/..", r"\tmp\..", "/tmp/.", r"\tmp\.", "..", ".", ""] {
            assert!(
                matches!(generate_filename(name), Err(Error::InvalidName { .. })),
                "{name:?}"
            );
        }
        for name in [
            "../path",
            r"..\path",
            "tmp/../path",
            r"tmp\..\path",
            "/tmp/../path",
            r"\tmp\..\path",
            "a/b\0.txt",
            "x\r\n.txt",
        ] {
            assert!(
                matches!(generate_filename(name), Err(Error::SuspiciousPath { .. })),
                "{name:?}"
            );
        }
    }

    /// Found by fuzzing (fuzz/regressions/names_and_upload_to): a backslash is a separator in
    /// `validate_file_name` too, and a template that parses but cannot be formatted is an error.
    #[test]
    fn fuzzed_names_and_templates() {
        assert!(validate_file_name("\\", false).is_err());
        assert!(validate_file_name(r"..\..\etc\passwd", false).is_err());
        assert!(validate_file_name("a/b\\", true).is_err());
        assert!(validate_file_name(r"a\b.txt", true).is_ok());
        let odd = UploadTo::template("%#z");
        assert!(matches!(
            odd.generate_filename("x.txt"),
            Err(Error::InvalidName { .. })
        ));
    }

    #[test]
    fn upload_to_template_matches_django_filefield() -> Result<()> {
        let folder = UploadTo::template("some/folder/");
        assert_eq!(
            folder.generate_filename("test with space.txt")?.as_str(),
            "some/folder/test_with_space.txt"
        );
        // test_filefield_dangerous_filename: nothing usable is left.
        for bad in ["..", ".", "", "???", "$.$.$"] {
            assert!(
                matches!(
                    folder.generate_filename(bad),
                    Err(Error::InvalidName { .. })
                ),
                "{bad:?}"
            );
        }
        // test_filefield_dangerous_filename_dot_segments and _absolute_path.
        for bad in ["../path", "/tmp/path", "/tmp/../path"] {
            assert!(
                matches!(
                    folder.generate_filename(bad),
                    Err(Error::SuspiciousPath { .. })
                ),
                "{bad:?}"
            );
        }
        // test_empty_upload_to.
        assert_eq!(
            UploadTo::template("")
                .generate_filename("django_test.txt")?
                .as_str(),
            "django_test.txt"
        );
        let at = DateTime::parse_from_rfc3339("2004-03-09T10:11:12Z")
            .map_err(|e| Error::backend("test", "date", e))?;
        let dated = UploadTo::template("photos/%Y/%m/%d/");
        assert_eq!(
            dated
                .generate_filename_at("cat.jpg", at.with_timezone(&Utc))?
                .as_str(),
            "photos/2004/03/09/cat.jpg"
        );
        assert!(UploadTo::template("bad/%Q").generate_filename("x").is_err());
        Ok(())
    }

    #[test]
    fn upload_to_func_matches_django_filefield() -> Result<()> {
        let prefixed = UploadTo::func(|f| format!("some/folder/{f}"));
        assert_eq!(
            prefixed.generate_filename("test with space.txt")?.as_str(),
            "some/folder/test_with_space.txt"
        );
        // test_filefield_generate_filename_upload_to_overrides_dangerous_filename.
        let fixed = UploadTo::func(|_| "test.txt".to_owned());
        for name in [
            "/tmp/.",
            "/tmp/..",
            "/tmp/../path",
            "/tmp/path",
            "some/folder/",
            "some/folder/.",
            "some/folder/..",
            "some/folder/???",
            "some/folder/$.$.$",
            "some/../test.txt",
            "",
        ] {
            assert_eq!(
                fixed.generate_filename(name)?.as_str(),
                "test.txt",
                "{name:?}"
            );
        }
        // test_filefield_generate_filename_upload_to_absolute_path / _dangerous_filename.
        let absolute = UploadTo::func(|f| format!("/tmp/{f}"));
        for name in ["path", "../path", "???", "$.$.$"] {
            assert!(
                matches!(
                    absolute.generate_filename(name),
                    Err(Error::SuspiciousPath { .. })
                ),
                "{name:?}"
            );
        }
        for name in ["..", ".", ""] {
            assert!(
                matches!(
                    absolute.generate_filename(name),
                    Err(Error::InvalidName { .. })
                ),
                "{name:?}"
            );
        }
        // Django's test_random_upload_to: the directory is decided once, by the function.
        let uuid = UploadTo::uuid("profile_pics").generate_filename("Me At The Beach.JPG")?;
        assert_eq!(uuid.dir(), "profile_pics");
        let (root, ext) = split_extensions(uuid.file_name());
        assert_eq!((root.len(), ext), (32, ".jpg"));
        Ok(())
    }

    #[test]
    fn extensions_follow_pathlib_suffixes() {
        assert_eq!(split_extensions("x.tar.gz"), ("x", ".tar.gz"));
        assert_eq!(split_extensions("test"), ("test", ""));
        assert_eq!(split_extensions(".test"), (".test", ""));
        assert_eq!(split_extensions(".test.txt"), (".test", ".txt"));
        assert_eq!(split_extensions("name."), ("name.", ""));
        assert_eq!(split_extensions("a..b"), ("a", "..b"));
    }

    #[test]
    fn alternatives_go_before_all_extensions() -> Result<()> {
        for (name, prefix, ext) in [
            ("x.tar.gz", "x", ".tar.gz"),
            ("multiple_files.txt", "multiple_files", ".txt"),
            ("dotted.path/test", "dotted.path/test", ""),
            ("dotted.path/.test", "dotted.path/.test", ""),
        ] {
            let mut candidates = NameCandidates::available(Name::new(name)?, None, false)?;
            assert_eq!(candidates.current().as_str(), name);
            let next = candidates.next_after_collision()?.to_string();
            assert!(is_suffixed(&next, prefix, ext), "{next}");
        }
        Ok(())
    }

    #[test]
    fn max_length_truncates_the_root_like_django() -> Result<()> {
        // FileFieldStorageTests.test_file_truncation: max_length 20 under "tests/".
        let mut candidates =
            NameCandidates::available(Name::new("tests/filename.ext")?, Some(20), false)?;
        assert_eq!(candidates.current().as_str(), "tests/filename.ext");
        let next = candidates.next_after_collision()?.to_string();
        assert!(is_suffixed(&next, "tests/fi", ".ext"), "{next}");
        assert_eq!(next.chars().count(), 20);
        let mut short =
            NameCandidates::available(Name::new("tests/short.longext")?, Some(20), false)?;
        assert!(matches!(
            short.next_after_collision(),
            Err(Error::InvalidName { .. })
        ));
        // OverwritingStorageTests.test_file_name_truncation(_extension_too_long).
        let overwrite =
            NameCandidates::available(Name::new("test_long_file_name.txt")?, Some(10), true)?;
        assert_eq!(overwrite.current().as_str(), "test_l.txt");
        assert!(NameCandidates::available(Name::new("file_name.longext")?, Some(5), true).is_err());
        Ok(())
    }

    #[test]
    fn exact_candidates_refuse_alternatives() -> Result<()> {
        let mut exact = NameCandidates::exact(Name::new("a.txt")?);
        assert!(matches!(
            exact.next_after_collision(),
            Err(Error::AlreadyExists { .. })
        ));
        let mut bounded = NameCandidates::available(Name::new("a.txt")?, None, false)?;
        let mut seen = 0;
        while bounded.next_after_collision().is_ok() {
            seen += 1;
            assert!(seen <= MAX_NAME_ATTEMPTS);
        }
        assert_eq!(seen, MAX_NAME_ATTEMPTS);
        Ok(())
    }

    #[test]
    fn upload_filenames_match_django_traversal_candidates() {
        // Django's CANDIDATE_TRAVERSAL_FILE_NAMES.
        for name in [
            "/tmp/hax0rd.txt",
            r"C:\Windows\hax0rd.txt",
            "C:/Windows/hax0rd.txt",
            r"\tmp\hax0rd.txt",
            r"/tmp\hax0rd.txt",
            "subdir/hax0rd.txt",
            r"subdir\hax0rd.txt",
            r"sub/dir\hax0rd.txt",
            "../../hax0rd.txt",
            r"..\..\hax0rd.txt",
            r"../..\hax0rd.txt",
            "..&#x2F;hax0rd.txt",
            "..&sol;hax0rd.txt",
        ] {
            assert_eq!(
                sanitize_upload_filename(name).as_deref(),
                Some("hax0rd.txt"),
                "{name}"
            );
        }
        // CANDIDATE_INVALID_FILE_NAMES.
        for name in [
            "/tmp/",
            r"c:\tmp\",
            "/tmp/.",
            r"c:\tmp\.",
            "/tmp/..",
            r"c:\tmp\..",
            "",
        ] {
            assert_eq!(sanitize_upload_filename(name), None, "{name}");
        }
        assert_eq!(
            sanitize_upload_filename("a\u{0}b\u{a0}c\u{202e}.txt").as_deref(),
            Some("abc.txt")
        );
    }

    #[test]
    fn upload_filenames_overflow_like_django() {
        // Django's FileUploadTests.test_filename_overflow.
        let long = "f".repeat(300);
        let cases = [
            (format!("{long}.txt"), format!("{}.txt", &long[..251])),
            (format!("foo.{long}"), format!(".{}", &long[..254])),
            (long.clone(), long[..255].to_owned()),
            (format!(".{long}"), format!(".{}", &long[..254])),
            (format!("{long}.{long}"), format!(".{}", &long[..254])),
        ];
        for (input, expected) in cases {
            assert_eq!(sanitize_upload_filename(&input), Some(expected));
        }
    }

    #[test]
    fn names_take_the_extension_of_their_type() {
        let cases = [
            // The client's extension is the type's: kept as written.
            ("photo.png", "image/png", "photo.png"),
            ("PHOTO.JPG", "image/jpeg", "PHOTO.JPG"),
            ("photo.jpeg", "image/jpeg", "photo.jpeg"),
            ("icon.ico", "image/vnd.microsoft.icon", "icon.ico"),
            ("data.csv", "text/csv", "data.csv"),
            ("notes.txt", "text/plain; charset=utf-8", "notes.txt"),
            ("my.holiday.png", "image/png", "my.holiday.png"),
            // It is not: every extension goes, the type's own comes.
            ("me.html", "image/png", "me.png"),
            ("me.svg", "image/jpeg", "me.jpg"),
            ("me.png.html", "image/png", "me.png"),
            ("shell.php.html", "image/png", "shell.png"),
            ("x.html", "text/csv", "x.csv"),
            ("x.html", "text/plain", "x.txt"),
            // Extensions mime_guess also files under text/plain, which servers run or read.
            ("run.cmd", "text/plain", "run.txt"),
            ("setup.reg", "text/plain", "setup.txt"),
            (".user.ini", "text/plain", ".user.txt"),
            ("avatar", "image/webp", "avatar.webp"),
            ("me.", "image/png", "me.png"),
            (".htaccess", "image/png", ".htaccess.png"),
            ("dir.html/me.html", "image/png", "dir.html/me.png"),
            (r"dir\me.html", "image/gif", r"dir\me.gif"),
            // A type nothing is known of goes out as a download.
            ("run.sh", "application/x-unheard-of", "run.bin"),
        ];
        for (filename, content_type, expected) in cases {
            assert_eq!(
                with_type_extension(filename, content_type),
                expected,
                "{filename} as {content_type}"
            );
        }
    }
}
