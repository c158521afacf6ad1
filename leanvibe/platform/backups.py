"""Logical backups of the whole database (``manage.py backup`` / ``manage.py restore``).

``pg_dump -Fc`` (custom format: compressed, restorable table by table) of every schema — public,
the template, every tenant — and ``pg_restore`` back. The PostgreSQL client programs are the
ones pgserver ships (16.x, a dependency for the embedded server; a newer ``pg_dump`` reads older
servers) unless ``PG_BIN_DIR`` names others.

Optionally encrypted with ``BACKUP_ENCRYPTION_KEY`` (a Fernet key: ``python -c "from
cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``). The file is a
header and a sequence of Fernet tokens, one per chunk of the dump, each sealing the chunk's index
and whether it is the last: a chunk that is altered, dropped, repeated, reordered or cut off makes
the restore refuse the file rather than restore part of it.

A backup can also go to, and come from, an S3-compatible bucket (``leanvibe.platform.targets``).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import connection

from leanvibe.platform.targets import TargetError, target_fetched, target_is_local, target_store

MAGIC = b"LEANVIBE-BACKUP-1\n"
CHUNK = 4 * 2**20
_FRAME = struct.Struct(">I")  # length of the token that follows
_SEAL = struct.Struct(">Q?")  # chunk index, last chunk


class BackupError(Exception):
    pass


def pg_program(name: str) -> str:
    configured = getattr(settings, "PG_BIN_DIR", "") or ""
    candidates = [Path(configured) / name] if configured else []
    try:
        import pgserver

        candidates.append(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)
    except ImportError:  # pragma: no cover - pgserver is a requirement
        pass
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found (PG_BIN_DIR, pgserver's, or on PATH)")
    return found


def connection_args(database: dict[str, Any] | None = None) -> tuple[list[str], dict[str, str]]:
    """libpq arguments and environment for ``database`` (default: the project's)."""
    db = database or settings.DATABASES["default"]
    args = ["--dbname", str(db["NAME"])]
    if db.get("HOST"):
        # A socket folder in a URL is percent-encoded (postgres://user@%2Fpath/db).
        args += ["--host", unquote(str(db["HOST"]))]
    if db.get("PORT"):
        args += ["--port", str(db["PORT"])]
    if db.get("USER"):
        args += ["--username", str(db["USER"])]
    env = {**os.environ}
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    return args, env


def _fernet(key: str | None) -> Fernet:
    if not key:
        raise BackupError("BACKUP_ENCRYPTION_KEY is not set")
    try:
        return Fernet(key.encode())
    except (ValueError, TypeError) as exc:
        raise BackupError("BACKUP_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64 bytes)") from exc


def encrypt_stream(source: BinaryIO, target: BinaryIO, *, key: str, chunk_size: int = CHUNK) -> None:
    fernet = _fernet(key)
    target.write(MAGIC)
    index = 0
    chunk = source.read(chunk_size)
    while True:
        following = source.read(chunk_size)
        token = fernet.encrypt(_SEAL.pack(index, not following) + chunk)
        target.write(_FRAME.pack(len(token)) + token)
        if not following:
            return
        chunk, index = following, index + 1


def decrypt_stream(source: BinaryIO, target: BinaryIO, *, key: str) -> None:
    fernet = _fernet(key)
    if source.read(len(MAGIC)) != MAGIC:
        raise BackupError("not an encrypted LeanVibe backup")
    index = 0
    while True:
        frame = source.read(_FRAME.size)
        if len(frame) < _FRAME.size:
            raise BackupError("the backup is cut short (no last chunk)")
        (length,) = _FRAME.unpack(frame)
        token = source.read(length)
        try:
            plain = fernet.decrypt(token)
        except InvalidToken as exc:
            raise BackupError("a chunk does not decrypt: wrong key, or the file was altered") from exc
        seen, last = _SEAL.unpack(plain[: _SEAL.size])
        if seen != index:
            raise BackupError("the backup's chunks are out of order")
        target.write(plain[_SEAL.size :])
        if last:
            if source.read(1):
                raise BackupError("data after the last chunk")
            return
        index += 1


def is_encrypted(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def backup_name(*, encrypt: bool) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"leanvibe-{settings.DATABASES['default']['NAME']}-{stamp}.dump"
    return name + (".enc" if encrypt else "")


def backup_to(target: str, *, encrypt: bool = False, key: str | None = None) -> tuple[str, int]:
    """Dump the whole database to ``target`` (a file or folder, ``s3://bucket/prefix/`` or
    ``s3://bucket/key``); returns where it went and its size. An S3 upload is made from a
    temporary file, in parts."""
    if target_is_local(target):
        path = backup_create(Path(target), encrypt=encrypt, key=key)
        return str(path), path.stat().st_size
    with tempfile.TemporaryDirectory(prefix="leanvibe-backup-") as tmp:
        name = backup_name(encrypt=encrypt)
        local = backup_create(Path(tmp) / name, encrypt=encrypt, key=key)
        size = local.stat().st_size
        try:
            return target_store(local, target, default_name=name), size
        except TargetError as exc:
            raise BackupError(str(exc)) from exc


@dataclass(frozen=True)
class LockBudget:
    """``pg_dump`` of the whole database takes an ``ACCESS SHARE`` lock on every table in one
    transaction, and PostgreSQL's shared lock table holds ``max_locks_per_transaction`` locks per
    server process: with the defaults (64, about 120 processes) about 7,800. Every tenant schema
    adds some 25 tables, so a whole-database dump fails ("out of shared memory") past about 300
    tenants unless the setting is raised."""

    tables: int
    per_process: int
    processes: int

    @property
    def capacity(self) -> int:
        return self.per_process * self.processes

    @property
    def needed(self) -> int:
        """A ``max_locks_per_transaction`` leaving the dump half of the lock table (a power of
        two, at least 64)."""
        value = 64
        while value * self.processes < 2 * self.tables:
            value *= 2
        return value

    @property
    def problem(self) -> str | None:
        if self.tables <= 0.8 * self.capacity:
            return None
        return (
            f"pg_dump locks every table in one transaction: {self.tables:,} tables, and this server's lock "
            f"table holds about {self.capacity:,} (max_locks_per_transaction {self.per_process} x "
            f"{self.processes} processes). Set max_locks_per_transaction to {self.needed} or more "
            "(postgresql.conf, or the managed service's parameters) and restart PostgreSQL."
        )


def backup_lock_budget() -> LockBudget:
    """The tables a whole-database dump locks, against the server's lock table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname !~ '^pg_(toast|temp)'"
        )
        (tables,) = cursor.fetchone()
        cursor.execute(
            "SELECT current_setting('max_locks_per_transaction')::int, "
            "current_setting('max_connections')::int + current_setting('autovacuum_max_workers')::int + 1 "
            "+ current_setting('max_worker_processes')::int + current_setting('max_wal_senders')::int "
            "+ current_setting('max_prepared_transactions')::int"
        )
        per_process, processes = cursor.fetchone()
    return LockBudget(tables=int(tables), per_process=int(per_process), processes=int(processes))


def backup_create(output: Path, *, encrypt: bool = False, key: str | None = None) -> Path:
    """Dump the whole database to ``output`` (a file, or a folder to name one in). Refused up
    front, saying which setting to raise, when the dump could not take its locks."""
    problem = backup_lock_budget().problem
    if problem:
        raise BackupError(problem)
    if output.is_dir():
        output = output / backup_name(encrypt=encrypt)
    args, env = connection_args()
    with tempfile.TemporaryDirectory(prefix="leanvibe-backup-") as tmp:
        plain = Path(tmp) / "plain.dump" if encrypt else output
        command = [pg_program("pg_dump"), "--format", "custom", "--no-owner", "--file", str(plain), *args]
        result = subprocess.run(  # noqa: S603 - our program, our database's arguments
            command,
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BackupError(f"pg_dump failed: {result.stderr.strip()[-1000:]}")
        if encrypt:
            with plain.open("rb") as source, output.open("wb") as target:
                encrypt_stream(source, target, key=key or settings.BACKUP_ENCRYPTION_KEY)
    return output


@contextmanager
def _plain_dump(path: Path, key: str | None) -> Iterator[Path]:
    if not is_encrypted(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="leanvibe-restore-") as tmp:
        plain = Path(tmp) / "plain.dump"
        with path.open("rb") as source, plain.open("wb") as target:
            decrypt_stream(source, target, key=key or settings.BACKUP_ENCRYPTION_KEY)
        yield plain


def backup_restore_from(
    source: str, *, database: dict[str, Any], key: str | None = None, jobs: int = 2
) -> None:
    """``backup_restore`` of a local file or an ``s3://bucket/key`` object (downloaded first)."""
    try:
        with target_fetched(source) as path:
            backup_restore(path, database=database, key=key, jobs=jobs)
    except TargetError as exc:
        raise BackupError(str(exc)) from exc


def backup_restore(path: Path, *, database: dict[str, Any], key: str | None = None, jobs: int = 2) -> None:
    """Restore ``path`` into ``database`` (which must exist; what it holds of the backup's
    objects is replaced)."""
    args, env = connection_args(database)
    with _plain_dump(path, key) as plain:
        command = [pg_program("pg_restore"), "--clean", "--if-exists", "--no-owner", "--jobs", str(jobs)]
        result = subprocess.run(  # noqa: S603 - our program, our database's arguments
            [*command, *args, str(plain)],
            env=env,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed: {result.stderr.strip()[-1000:]}")
