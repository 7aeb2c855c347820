"""Regenerates django_names.json: what Django itself answers for a corpus of names.

Run with Django 5.2 installed (`pip install 'django==5.2.*'`):

    python3 crates/storage-core/tests/django/generate_fixtures.py

The Rust test `django_names.rs` replays every case against storage-core's naming rules, so the
claim "the name rules match Django's" is checked against Django's own answers, not our reading
of its source. The corpus is fixed (seeded) so the file only changes when the corpus does.
"""

import json
import os
import random
import sys

import django
from django.conf import settings

settings.configure(MEDIA_ROOT="/nonexistent-media-root", MEDIA_URL="/media/")
django.setup()

from django.core.exceptions import SuspiciousFileOperation  # noqa: E402
from django.core.files.storage import Storage  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.db.models import FileField  # noqa: E402
from django.http.multipartparser import MultiPartParser  # noqa: E402
from django.utils.encoding import filepath_to_uri  # noqa: E402
from django.utils.text import get_valid_filename  # noqa: E402
import pathlib  # noqa: E402

CURATED = [
    "john's portrait in 2004.jpg", "UnTRIVíAL @fil$ena#me!", "x.tar.gz", ".hidden", "name.",
    "a..b", "...", "..", ".", "", " ", "  spaced  out  ", "日本語 ファイル.txt", "résumé.pdf",
    "some/path/file.txt", "some\\path\\file.txt", "././x", "some/./path/./x", ".\\.\\x",
    "../path", "..\\path", "tmp/../path", "/tmp/../path", "/tmp/path", "/tmp/..", "/tmp/.",
    "\\tmp\\..", "some/folder/", "???", "$.$.$", "C:\\Windows\\x.txt", "C:/Windows/x.txt",
    "../../hax0rd.txt", "..&#x2F;hax0rd.txt", "..&sol;hax0rd.txt", "a&amp;b.txt",
    "tab\there.txt", "nbsp\u00a0here.txt", "rtl\u202eexe.txt", "emoji 😀.png",
    "f" * 300 + ".txt", "foo." + "f" * 300, "." + "f" * 300, "f" * 300,
    "under_score-dash.and.dots", "x" * 20 + "." + "y" * 8, "dotted.path/test",
    "dotted.path/.test", "UPPER.TXT", "ﬁle.txt", "Ⅻ.txt", "٣.txt", "a\u0301.txt",
    "\u00adsoft.txt", "\u200bzero.txt", "x\u3000y.txt",
]

ALPHABET = list("abcXYZ019 ._-/\\'$#@!~()&;:") + ["é", "ß", "日", "😀", "\u00a0", "\u0301", "\u200b", "\u2028"]


def corpus():
    rng = random.Random(20261121)
    names = list(CURATED)
    for _ in range(400):
        names.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 16))))
    return names


def outcome(fn):
    try:
        return {"ok": str(fn())}
    except SuspiciousFileOperation as e:
        msg = str(e)
        if msg.startswith("Could not derive file name"):
            return {"err": "invalid"}
        if msg.startswith("Detected path traversal") or "includes path elements" in msg:
            return {"err": "suspicious"}
        return {"err": "other", "message": msg}


def sanitized_upload(name):
    parser = MultiPartParser(
        {"CONTENT_TYPE": "multipart/form-data; boundary=_foo", "CONTENT_LENGTH": "1"},
        __import__("io").StringIO("x"), [], "utf-8",
    )
    cleaned = parser.sanitize_file_name(name)
    if cleaned is None:
        return None
    try:
        return SimpleUploadedFile(cleaned, b"").name
    except SuspiciousFileOperation:
        return None


def main():
    storage = Storage()
    field = FileField(upload_to="some/folder/")
    cases = []
    for name in corpus():
        cases.append({
            "input": name,
            "get_valid_name": outcome(lambda: get_valid_filename(name)),
            "generate_filename": outcome(lambda: storage.generate_filename(name)),
            "field_generate_filename": outcome(lambda: field.generate_filename(None, name)),
            "sanitize_upload_filename": sanitized_upload(name),
            "url_path": filepath_to_uri(name).lstrip("/"),
            "suffixes": "".join(pathlib.PurePath(name.replace("/", "_")).suffixes) if name else "",
        })
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "django_names.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"django": django.get_version(), "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases from Django {django.get_version()} to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
