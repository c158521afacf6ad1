"""``manage.py backup`` / ``restore``: the whole database through the real pg_dump and pg_restore,
restored into a new database that is compared row by row and then serves a request; the
encryption refuses a wrong key and a file altered, cut short or reordered."""

from __future__ import annotations

import io
import json
import os
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, connections

from leanvibe.platform import backups
from leanvibe.platform.backups import BackupError, decrypt_stream, encrypt_stream
from leanvibe.serving import server_process
from tenants.models import Tenant

KEY = Fernet.generate_key().decode()


# --- encryption --------------------------------------------------------------------------------
def _encrypted(data: bytes, chunk_size: int = 1000) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, key=KEY, chunk_size=chunk_size)
    return out.getvalue()


def _decrypted(blob: bytes, key: str = KEY) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, key=key)
    return out.getvalue()


def _frames(blob: bytes) -> list[bytes]:
    frames, at = [], len(backups.MAGIC)
    while at < len(blob):
        (length,) = backups._FRAME.unpack(blob[at : at + 4])
        frames.append(blob[at : at + 4 + length])
        at += 4 + length
    return frames


def test_encryption_round_trips_across_chunks_and_hides_the_data():
    data = os.urandom(3500) + b"secret tenant data"
    blob = _encrypted(data)
    assert b"secret tenant data" not in blob and len(_frames(blob)) == 4
    assert _decrypted(blob) == data
    assert _decrypted(_encrypted(b"")) == b""


def test_a_wrong_key_or_an_altered_file_is_refused():
    blob = _encrypted(os.urandom(2500))
    with pytest.raises(BackupError, match="wrong key"):
        _decrypted(blob, key=Fernet.generate_key().decode())
    altered = bytearray(blob)
    altered[len(backups.MAGIC) + 40] ^= 1
    with pytest.raises(BackupError, match="altered"):
        _decrypted(bytes(altered))
    frames = _frames(blob)
    with pytest.raises(BackupError, match="cut short"):
        _decrypted(backups.MAGIC + b"".join(frames[:-1]))
    with pytest.raises(BackupError, match="out of order"):
        _decrypted(backups.MAGIC + frames[1] + frames[0] + frames[2])
    with pytest.raises(BackupError, match="after the last"):
        _decrypted(blob + frames[0])
    with pytest.raises(BackupError, match="not an encrypted"):
        _decrypted(b"PGDMP" + blob)
    with pytest.raises(BackupError, match="not a Fernet key"):
        _decrypted(blob, key="not-a-key")


# --- the whole database ------------------------------------------------------------------------
def _server(database: dict[str, Any]) -> dict[str, Any]:
    params = {
        "dbname": "postgres",
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "host": database.get("HOST") or None,
        "port": int(database["PORT"]) if database.get("PORT") else None,
    }
    return {key: value for key, value in params.items() if value is not None}


def _rows(database: dict[str, Any], schemas: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of ``schemas``, sorted, by table."""
    params = {**_server(database), "dbname": database["NAME"]}
    found: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(**params) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE' ORDER BY 1, 2",
            [schemas],
        ).fetchall()
        for schema, table in tables:
            rows = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()  # noqa: S608
            found[f"{schema}.{table}"] = sorted(rows, key=repr)
    return found


@pytest.fixture
def restored(transactional_db: None) -> Iterator[dict[str, Any]]:
    """An empty new database on the same server, dropped afterwards."""
    database = dict(settings.DATABASES["default"])
    name = f"{database['NAME']}_restored_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(**_server(database), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**database, "NAME": name}
    finally:
        with psycopg.connect(**_server(database), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def committed_tenant(transactional_db: None, make_tenant: Any) -> Iterator[Any]:
    handle = make_tenant("Backed Up Inc")
    yield handle
    connections.close_all()
    for tenant in Tenant.objects.all():
        tenant.delete(force_drop=True)


def _url(database: dict[str, Any]) -> str:
    url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    return url._replace(path="/" + database["NAME"]).geturl()


def _serves_ready(database: dict[str, Any]) -> dict[str, Any]:
    """gunicorn on the restored database: what /health/ready answers (every schema migrated)."""
    env = {"DATABASE_URL": _url(database), "METRICS_TOKEN": "backup-test-token"}
    command = [str(Path(sys.executable).parent / "gunicorn"), "leanvibe.wsgi:application"]
    command += ["--bind", "127.0.0.1:{port}", "--workers", "1"]
    with server_process(command, name="restored", env=env, timeout=90) as port:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/health/ready", headers={"Authorization": "Bearer backup-test-token"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return {**json.loads(response.read()), "http_status": response.status}


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
def test_backup_restores_every_row_into_a_new_database_that_serves(
    committed_tenant, restored, tmp_path, settings, encrypt
):
    settings.BACKUP_ENCRYPTION_KEY = KEY
    schema = committed_tenant.tenant.schema_name
    with connection.cursor() as cursor:  # a row with characters a careless dump would mangle
        cursor.execute(
            f'INSERT INTO "{schema}".agents_project (id, name, description, status, created_at, updated_at) '  # noqa: S608
            "VALUES (%s, %s, %s, 'active', now(), now())",
            [str(uuid.uuid4()), "Ünïcode ✓ 'quoted'", "tab\there\nnewline"],
        )
    out = io.StringIO()
    call_command("backup", str(tmp_path), *(["--encrypt"] if encrypt else []), stdout=out)
    [dump] = list(tmp_path.iterdir())
    assert dump.name.endswith(".dump.enc" if encrypt else ".dump") and str(dump) in out.getvalue()
    assert backups.is_encrypted(dump) is encrypt

    call_command("restore", str(dump), "--database-url", _url(restored), stdout=io.StringIO())

    schemas = ["public", settings.TENANT_TEMPLATE_SCHEMA, schema]
    original, copy = _rows(settings.DATABASES["default"], schemas), _rows(restored, schemas)
    assert original.keys() == copy.keys() and f"{schema}.agents_project" in copy
    for table in original:
        assert copy[table] == original[table], table
    ready = _serves_ready(restored)
    assert (ready["http_status"], ready["status"], ready["checks"]["migrations"]) == (200, "ready", "ok")


def test_restore_refuses_the_projects_own_database_without_force_and_a_missing_file(tmp_path, db):
    with pytest.raises(CommandError, match="--force"):
        call_command("restore", __file__, stdout=io.StringIO())
    with pytest.raises(CommandError, match="no backup file"):
        call_command("restore", str(tmp_path / "nothing.dump"), "--database-url", "postgres://x/y")


def test_an_encrypted_backup_needs_the_key(tmp_path, settings, db):
    settings.BACKUP_ENCRYPTION_KEY = ""
    with pytest.raises(CommandError, match="BACKUP_ENCRYPTION_KEY is not set"):
        call_command("backup", str(tmp_path), "--encrypt", stdout=io.StringIO())


def test_without_a_target_backup_writes_to_backup_target(tmp_path, settings, transactional_db):
    settings.BACKUP_TARGET = str(tmp_path / "nightly")
    (tmp_path / "nightly").mkdir()
    out = io.StringIO()
    call_command("backup", stdout=out)
    [written] = list((tmp_path / "nightly").iterdir())
    assert written.suffix == ".dump" and written.stat().st_size > 0
    assert str(written) in out.getvalue()
