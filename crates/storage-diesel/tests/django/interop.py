#!/usr/bin/env python3
"""Drive django-binary-database-files against a database, to check interoperability.

Runs real Django (configured in-process, no project needed) with the
``binary_database_files`` app and its ``DatabaseStorage`` as the default storage,
so the Rust side can prove that it reads and writes the ``binary_database_files_file``
table exactly the way the Python package does.

Usage:
    PYTHON interop.py --db URL [--media-root DIR] [--export] COMMAND

URL:
    sqlite:///abs/path.db | sqlite://relative.db
    postgres://user[:password]@host[:port]/db   (also postgresql://)
    mysql://user[:password]@host[:port]/db      (also mariadb://; PyMySQL, charset utf8mb4)

Commands (each prints exactly one JSON document on stdout; diagnostics go to stderr;
the exit status is non-zero, and stdout empty, on any failure):
    reset   drop binary_database_files_file and the app's django_migrations rows, then
            `migrate binary_database_files`                       -> {"ok": true}
    ddl     `sqlmigrate binary_database_files 0001`               -> {"sql": ..., ...}
    write   stdin [{"name", "content_b64"}]: default_storage.save each
            -> [{"requested", "name", "size", "content_hash", "sha256"}]
    read    stdin [{"name", "sha256"}]: open each through default_storage and check
            -> [{"name", "found", "content_ok", "hash_ok", "size_ok", "fresh", "exists", "url",
                 "content_hash" (column), "expected_hash" (utils.get_text_hash)}]
            hash_ok also accepts a NULL content_hash for empty content, which is what
            Django itself stores; "fresh" is null without --media-root.

Settings: DB_FILES_AUTO_EXPORT_DB_TO_FS is True only with --export
(the package's own default would be True); MEDIA_ROOT is --media-root or a fresh
temporary directory that is removed on exit.
"""

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import traceback
from urllib.parse import parse_qsl, unquote, urlsplit

APP = "binary_database_files"
TABLE = "binary_database_files_file"


class UsageError(Exception):
    pass


def database_settings(url):
    """Translate a database URL into a Django DATABASES["default"] entry."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UsageError(f"not a database URL: {url!r}")
    scheme = scheme.lower()

    if scheme in ("sqlite", "sqlite3"):
        # sqlite:///abs/path.db -> /abs/path.db ; sqlite://relative.db -> relative.db
        path = rest.split("?", 1)[0]
        if not path:
            raise UsageError(f"no SQLite path in {url!r}")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(path)}

    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise UsageError(f"no database name in {url!r}")
    common = {
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }
    query = dict(parse_qsl(parts.query))

    if scheme in ("postgres", "postgresql"):
        # Query parameters (sslmode=..., options=...) are libpq connection parameters.
        return {"ENGINE": "django.db.backends.postgresql", **common, "OPTIONS": query}

    if scheme in ("mysql", "mariadb"):
        import pymysql

        pymysql.install_as_MySQLdb()
        if query:
            log(f"ignoring URL query parameters for MySQL: {sorted(query)}")
        return {
            "ENGINE": "django.db.backends.mysql",
            **common,
            "OPTIONS": {"charset": "utf8mb4"},
        }

    raise UsageError(f"unsupported database scheme {scheme!r} in {url!r}")


def log(message):
    print(f"[interop] {message}", file=sys.stderr, flush=True)


def configure(args):
    from django.conf import settings

    media_root = args.media_root
    temp_root = None
    if media_root is None:
        temp_root = media_root = tempfile.mkdtemp(prefix="dbfiles-django-media-")
    media_root = os.path.abspath(media_root)
    os.makedirs(media_root, exist_ok=True)

    settings.configure(
        DEBUG=False,
        INSTALLED_APPS=[APP],
        DATABASES={"default": database_settings(args.db)},
        USE_TZ=True,
        TIME_ZONE="UTC",
        MEDIA_ROOT=media_root,
        MEDIA_URL="/media/",
        DB_FILES_AUTO_EXPORT_DB_TO_FS=bool(args.export),
        STORAGES={
            "default": {"BACKEND": "binary_database_files.storage.DatabaseStorage"},
            "staticfiles": {
                "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
            },
        },
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        LOGGING_CONFIG=None,
    )
    import django

    django.setup()

    # binary_database_files.settings copies the setting at import time; make sure it
    # is what we asked for (the package's default would be True).
    from binary_database_files import settings as dbf_settings

    if dbf_settings.DB_FILES_AUTO_EXPORT_DB_TO_FS is not bool(args.export):
        raise RuntimeError("DB_FILES_AUTO_EXPORT_DB_TO_FS did not take effect")
    return temp_root


def versions():
    import django
    from importlib.metadata import version

    return {
        "django": django.get_version(),
        "package": version("django-binary-database-files"),
    }


def read_stdin_json():
    data = sys.stdin.buffer.read()
    try:
        items = json.loads(data)
    except ValueError as e:
        raise UsageError(f"stdin is not JSON: {e}") from e
    if not isinstance(items, list):
        raise UsageError("stdin must be a JSON array")
    return items


# ---------------------------------------------------------------------------------------
# commands


def cmd_reset(args):
    from django.core.management import call_command
    from django.db import connection

    qn = connection.ops.quote_name
    tables = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        if TABLE in tables:
            log(f"dropping {TABLE}")
            cursor.execute(f"DROP TABLE {qn(TABLE)}")
        if "django_migrations" in tables:
            cursor.execute(
                f"DELETE FROM {qn('django_migrations')} WHERE {qn('app')} = %s", [APP]
            )
            log(f"deleted {cursor.rowcount} django_migrations row(s) of {APP}")
    call_command(
        "migrate", APP, interactive=False, verbosity=1, stdout=sys.stderr, stderr=sys.stderr
    )
    return {"ok": True}


def ddl_statements(sql):
    """sqlmigrate output without BEGIN/COMMIT and comments, one statement per line."""
    statements = []
    for line in sql.splitlines():
        line = line.strip()
        if not line or line.startswith("--"):
            continue
        if line.rstrip(";").strip().upper() in ("BEGIN", "COMMIT", "START TRANSACTION"):
            continue
        if not line.endswith(";"):
            # sqlmigrate prints every statement on one line ending in ';'.
            raise RuntimeError(f"unexpected sqlmigrate line: {line!r}")
        statements.append(line)
    return statements


def cmd_ddl(args):
    from django.core.management import call_command
    from django.db import connection

    out = io.StringIO()
    call_command("sqlmigrate", APP, "0001", stdout=out, stderr=sys.stderr, no_color=True)
    sql = out.getvalue()
    statements = ddl_statements(sql)
    v = versions()
    vendor = connection.vendor
    fixture = (
        f"-- Generated by `interop.py ddl` ({vendor}) with Django {v['django']} and "
        f"django-binary-database-files {v['package']} (do not edit by hand)\n"
        + "".join(s + "\n" for s in statements)
    )
    return {
        "sql": sql,
        "statements": statements,
        "fixture": fixture,
        "vendor": vendor,
        **v,
    }


def row_for(name):
    from binary_database_files.models import File

    try:
        return File.objects.get(name=name)
    except File.DoesNotExist:
        return None


def cmd_write(args):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    results = []
    for item in read_stdin_json():
        requested = item["name"]
        content = base64.b64decode(item["content_b64"], validate=True)
        stored = default_storage.save(requested, ContentFile(content))
        row = row_for(stored)
        if row is None:
            raise RuntimeError(f"no row named {stored!r} after saving {requested!r}")
        results.append(
            {
                "requested": requested,
                "name": stored,
                "size": row.size,
                "content_hash": row._content_hash,
                "sha256": hashlib.sha256(content).hexdigest(),
            }
        )
        log(f"saved {requested!r} as {stored!r} ({row.size} bytes)")
    return results


def cmd_read(args):
    from binary_database_files import utils
    from django.core.files.storage import default_storage

    results = []
    for item in read_stdin_json():
        name = item["name"]
        expected = item["sha256"].lower()
        instance_name = default_storage.get_instance_name(name)
        row = row_for(instance_name)
        result = {
            "name": name,
            "found": row is not None,
            "content_ok": False,
            "hash_ok": False,
            "size_ok": False,
            "fresh": None,
            "exists": False,
            "url": None,
            "content_hash": None,
            "expected_hash": None,
        }
        if row is not None:
            content = bytes(row.content)
            text_hash = utils.get_text_hash(content)
            # Django itself leaves content_hash NULL for empty content (File.content_hash
            # only hashes truthy content), so accept NULL there as well as the hash.
            result["hash_ok"] = row._content_hash == text_hash or (
                not content and row._content_hash is None
            )
            result["content_hash"] = row._content_hash
            result["expected_hash"] = text_hash
            result["size_ok"] = row.size == len(content)
            if args.media_root is not None:
                # Before opening: with --export, opening may (re)write the mirror.
                result["fresh"] = bool(utils.is_fresh(row.name, row._content_hash))
            # Only open names that are in the table: DatabaseStorage._open would
            # otherwise import a file found under MEDIA_ROOT into the database.
            with default_storage.open(name, "rb") as f:
                data = f.read()
            result["content_ok"] = hashlib.sha256(data).hexdigest() == expected
        else:
            log(f"no row named {instance_name!r}")
        result["exists"] = bool(default_storage.exists(name))
        result["url"] = default_storage.url(name)
        results.append(result)
    return results


COMMANDS = {"reset": cmd_reset, "ddl": cmd_ddl, "write": cmd_write, "read": cmd_read}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--media-root", help="MEDIA_ROOT (default: a fresh temp dir)")
    parser.add_argument(
        "--export",
        action="store_true",
        help="set DB_FILES_AUTO_EXPORT_DB_TO_FS (mirror files under MEDIA_ROOT)",
    )
    parser.add_argument("command", choices=sorted(COMMANDS))
    args = parser.parse_args(argv)

    # Anything printed by Django or the package goes to stderr; stdout carries only
    # the one JSON document, written at the end.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    temp_root = None
    try:
        temp_root = configure(args)
        result = COMMANDS[args.command](args)
        from django.db import connections

        connections.close_all()
    except UsageError as e:
        log(f"error: {e}")
        return 2
    except Exception:
        traceback.print_exc(file=sys.stderr)
        return 1
    finally:
        sys.stdout = real_stdout
        if temp_root is not None:
            shutil.rmtree(temp_root, ignore_errors=True)
    # ASCII-only JSON (non-ASCII as \u escapes) whatever the locale.
    real_stdout.write(json.dumps(result) + "\n")
    real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
