"""Moving one tenant between databases (``manage.py tenant_export`` / ``tenant_import``): the way
a tenant changes database server, and the unit of sharding later.

An archive is a tar of three members:

- ``manifest.json``: format version, source database, schema, tenant id, subdomain, time, the
  code's migrations (the last one of each app) and the row counts per table. An import refuses
  an archive made by code at another migration state: the schema inside would not match.
- ``public.json``: the tenant's rows of the public schema — its ``Tenant`` row and each kind of
  row the apps register (``tenants.registry.TenantPublicRows``): its domains (here), its billing
  account, usage ledger and dj-stripe customer link (billing). Django's ``python``
  serialization, in JSON with full-precision times, so the rows come back byte for byte.
- ``schema.dump``: ``pg_dump -Fc --schema=<schema>``: every table of the tenant's schema.

With ``--encrypt`` the whole tar is sealed chunk by chunk like an encrypted backup.

The import restores the schema in one transaction (``pg_restore`` to SQL, run by ``psql
--single-transaction``; a renamed copy is restored under the dump's schema name and renamed in
that same transaction, the original parked under another name meanwhile when it is in this
database), then inserts the public rows in one Django transaction; if that fails the restored
schema is dropped, so a failure leaves no half tenant.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import serializers
from django.core.management.color import no_style
from django.core.serializers.base import DeserializationError
from django.db import DatabaseError, models, transaction
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import get_public_schema_name, schema_exists

from leanvibe.db import connection
from leanvibe.health import pending_migrations
from leanvibe.platform.backups import (
    BackupError,
    connection_args,
    decrypt_stream,
    encrypt_stream,
    is_encrypted,
    pg_program,
)
from leanvibe.platform.targets import TargetError, target_fetched, target_store
from tenants.models import Domain, Tenant
from tenants.registry import (
    TenantPublicRows,
    TenantRename,
    tenant_public_rows,
    tenant_public_rows_register,
)
from tenants.schemas import schema_drop
from tenants.subdomains import VALID_SUBDOMAIN, is_reserved

ARCHIVE_FORMAT = 1
MANIFEST, PUBLIC_ROWS, SCHEMA_DUMP = "manifest.json", "public.json", "schema.dump"
TENANT_LABEL = "tenants.tenant"

Progress = Callable[[str], None]


class MoveError(Exception):
    pass


class ImportRefused(MoveError):
    """The archive cannot go into this database as it is (nothing was changed)."""


@dataclass(frozen=True)
class ExportResult:
    location: str
    size: int
    manifest: dict[str, Any]


@dataclass
class ImportResult:
    tenant: Tenant
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _quiet(message: str) -> None:
    pass


# --- what moves --------------------------------------------------------------------------------
def _domain_copy(row: Domain, rename: TenantRename) -> Domain | None:
    """A renamed copy gets ``<new subdomain>.<rest>`` for each ``<old subdomain>.<rest>``; a
    custom domain stays with the original."""
    prefix = f"{rename.old_subdomain}."
    if not row.domain.startswith(prefix):
        return None
    row.domain = f"{rename.new_subdomain}.{row.domain[len(prefix) :]}"
    return row


def register_public_rows() -> None:
    """The tenant's own public rows besides its ``Tenant`` row (``TenantsConfig.ready``)."""
    tenant_public_rows_register(
        TenantPublicRows(model=Domain, tenant_field="tenant", order=10, copy=_domain_copy)
    )


def migration_state() -> dict[str, list[str]]:
    """The code's migrations: the last migration(s) of each app (the graph's leaves)."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    state: dict[str, list[str]] = {}
    for app, name in loader.graph.leaf_nodes():
        state.setdefault(app, []).append(name)
    return {app: sorted(names) for app, names in sorted(state.items())}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()  # microseconds kept (DjangoJSONEncoder would cut them)
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} in an archive")


def public_rows_collect(tenant: Tenant) -> dict[str, list[dict[str, Any]]]:
    """The tenant's public rows by model label, serialized (``python`` format, ids kept)."""
    collected = {TENANT_LABEL: serializers.serialize("python", Tenant.objects.filter(pk=tenant.pk))}
    for kind in tenant_public_rows():
        queryset = kind.model._base_manager.filter(**{kind.tenant_field: tenant.pk}).order_by("pk")
        collected[kind.label] = serializers.serialize("python", queryset)
    return collected


def _schema_counts(schema: str) -> dict[str, int]:
    quoted = connection.ops.quote_name(schema)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY 1",
            [schema],
        )
        tables = [row[0] for row in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {quoted}.{connection.ops.quote_name(table)}")  # noqa: S608
            counts[table] = int(cursor.fetchone()[0])
    return counts


def _program(name: str) -> str:
    try:
        return pg_program(name)
    except BackupError as exc:
        raise MoveError(str(exc)) from exc


def _run(command: list[str], *, env: dict[str, str], what: str) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True)  # noqa: S603 - our programs
    if result.returncode != 0:
        raise MoveError(f"{what} failed: {result.stderr.strip()[-1000:]}")


# --- export ------------------------------------------------------------------------------------
def _consistent_read(tenant: Tenant, dump: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """``pg_dump`` of the schema, the public rows and the counts, all from one snapshot (a
    repeatable-read transaction whose snapshot pg_dump shares), so a usage row written meanwhile
    is in both or in neither. Inside a caller's transaction (which cannot share its snapshot)
    they are read one after the other."""
    schema = tenant.schema_name
    args, env = connection_args()
    command = [_program("pg_dump"), "--format", "custom", "--no-owner", "--no-privileges", "--schema", schema]
    command += ["--file", str(dump)]
    if connection.in_atomic_block:
        _run([*command, *args], env=env, what="pg_dump")
        return public_rows_collect(tenant), _schema_counts(schema)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = str(cursor.fetchone()[0])
        _run([*command, "--snapshot", snapshot, *args], env=env, what="pg_dump")
        return public_rows_collect(tenant), _schema_counts(schema)


def tenant_export(
    *,
    tenant: Tenant,
    target: str,
    encrypt: bool = False,
    key: str | None = None,
    progress: Progress = _quiet,
) -> ExportResult:
    """Write ``tenant``'s archive to ``target`` (a file or folder, ``s3://bucket/prefix/`` or
    ``s3://bucket/key``). The schema and the public rows are read at one point in time; suspend
    the tenant first when it moves, so that nothing changes after it."""
    schema = tenant.schema_name
    stamp = datetime.now(UTC)
    name = f"tenant-{schema}-{stamp:%Y%m%dT%H%M%SZ}.tar" + (".enc" if encrypt else "")
    with tempfile.TemporaryDirectory(prefix="leanvibe-export-") as tmp:
        folder = Path(tmp)
        progress(f"dumping schema {schema} (pg_dump -Fc) and its public rows ...")
        rows, schema_counts = _consistent_read(tenant, folder / SCHEMA_DUMP)
        (folder / PUBLIC_ROWS).write_text(
            json.dumps(rows, default=_json_default, ensure_ascii=False, indent=1)
        )
        database = settings.DATABASES["default"]
        manifest = {
            "format": ARCHIVE_FORMAT,
            "source_database": {"name": database["NAME"], "host": database.get("HOST") or ""},
            "schema": schema,
            "tenant_id": str(tenant.id),
            "subdomain": tenant.subdomain,
            "created_at": stamp.isoformat(),
            "migrations": migration_state(),
            "counts": {
                "schema": schema_counts,
                "public": {label: len(items) for label, items in rows.items()},
            },
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
        archive = folder / "archive.tar"
        with tarfile.open(archive, "w") as tar:
            for member in (MANIFEST, PUBLIC_ROWS, SCHEMA_DUMP):
                tar.add(folder / member, arcname=member)
        if encrypt:
            progress("encrypting ...")
            sealed = folder / "archive.tar.enc"
            try:
                with archive.open("rb") as source, sealed.open("wb") as sink:
                    encrypt_stream(source, sink, key=key or settings.BACKUP_ENCRYPTION_KEY)
            except BackupError as exc:
                raise MoveError(str(exc)) from exc
            archive = sealed
        size = archive.stat().st_size
        progress(f"storing {size / 2**20:.1f} MiB ...")
        try:
            location = target_store(archive, target, default_name=name)
        except TargetError as exc:
            raise MoveError(str(exc)) from exc
    return ExportResult(location, size, manifest)


# --- import ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Archive:
    manifest: dict[str, Any]
    rows: dict[str, list[dict[str, Any]]]
    dump: Path


def _archive_open(path: Path, folder: Path, key: str | None) -> _Archive:
    if is_encrypted(path):
        plain = folder / "archive.tar"
        try:
            with path.open("rb") as source, plain.open("wb") as sink:
                decrypt_stream(source, sink, key=key or settings.BACKUP_ENCRYPTION_KEY)
        except BackupError as exc:
            raise ImportRefused(f"the archive cannot be decrypted: {exc}") from exc
        path = plain
    try:
        with tarfile.open(path, "r:") as tar:
            for member in (MANIFEST, PUBLIC_ROWS, SCHEMA_DUMP):
                info = tar.getmember(member)
                handle = tar.extractfile(info) if info.isfile() else None
                if handle is None:
                    raise ImportRefused(f"not a tenant archive: {member} is not a file")
                with handle, (folder / member).open("wb") as sink:
                    while chunk := handle.read(2**20):
                        sink.write(chunk)
    except (tarfile.TarError, KeyError, EOFError) as exc:
        raise ImportRefused(f"not a tenant archive ({exc})") from exc
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        rows = json.loads((folder / PUBLIC_ROWS).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImportRefused(f"not a tenant archive: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise ImportRefused(f"not a tenant archive of format {ARCHIVE_FORMAT}")
    if not isinstance(rows, dict) or len(rows.get(TENANT_LABEL) or []) != 1:
        raise ImportRefused("the archive holds no tenant row")
    return _Archive(manifest, rows, folder / SCHEMA_DUMP)


def _migrations_check(manifest: dict[str, Any]) -> None:
    theirs, ours = manifest.get("migrations") or {}, migration_state()
    differing = sorted(app for app in set(theirs) | set(ours) if theirs.get(app) != ours.get(app))
    if differing:
        detail = ", ".join(
            f"{app} {theirs.get(app) or '-'} here {ours.get(app) or '-'}" for app in differing[:5]
        )
        raise ImportRefused(
            f"the archive was made by code at another migration state ({detail}); "
            "import it with the same release, migrated (manage.py platform_migrate)"
        )


def _conflicts(tenant_id: str, subdomain: str, domains: list[str]) -> list[str]:
    found = []
    if Tenant.objects.filter(id=tenant_id).exists():
        found.append(f"tenant id {tenant_id}")
    if Tenant.objects.filter(schema_name=subdomain).exists():
        found.append(f"subdomain {subdomain!r}")
    if schema_exists(subdomain, case_sensitive=False):
        found.append(f"schema {subdomain!r}")
    found += [
        f"domain {name!r}"
        for name in Domain.objects.filter(domain__in=domains).values_list("domain", flat=True)
    ]
    return found


def _schema_restore(dump: Path, *, source_schema: str, schema: str) -> None:
    """The dump's schema restored as ``schema``, all or nothing, in one transaction."""
    args, env = connection_args()
    quote = connection.ops.quote_name
    before: list[str] = []
    after: list[str] = []
    if schema != source_schema:
        if schema_exists(source_schema, case_sensitive=False):
            # The original is here (a copy beside it): park it while its dump is restored.
            parked = f"lv_parked_{secrets.token_hex(6)}"
            before.append(f"ALTER SCHEMA {quote(source_schema)} RENAME TO {quote(parked)}")
            after.append(f"ALTER SCHEMA {quote(source_schema)} RENAME TO {quote(schema)}")
            after.append(f"ALTER SCHEMA {quote(parked)} RENAME TO {quote(source_schema)}")
        else:
            after.append(f"ALTER SCHEMA {quote(source_schema)} RENAME TO {quote(schema)}")
    with tempfile.TemporaryDirectory(prefix="leanvibe-import-") as tmp:
        script = Path(tmp) / "schema.sql"
        restore = [
            _program("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--file",
            str(script),
            str(dump),
        ]
        _run(restore, env=env, what="pg_restore")
        command = [
            _program("psql"),
            "--no-psqlrc",
            "--quiet",
            "--set",
            "ON_ERROR_STOP=1",
            "--single-transaction",
        ]
        for statement in before:
            command += ["--command", statement]
        command += ["--file", str(script)]
        for statement in after:
            command += ["--command", statement]
        _run([*command, *args], env=env, what="restoring the schema (psql)")


def _is_auto(pk: models.Field[Any, Any]) -> bool:
    return isinstance(pk, models.AutoField | models.BigAutoField | models.SmallAutoField)


def _tenant_fk(model: type[models.Model], tenant_field: str) -> models.Field[Any, Any]:
    return model._meta.get_field(tenant_field)  # type: ignore[return-value]


def _references_fill(row: models.Model, skip: str, notes: list[str]) -> None:
    """A nullable reference to a row that is not in this database (a dj-stripe object not synced
    here yet) is left empty; a required one refuses the import."""
    for fk in row._meta.concrete_fields:
        if not fk.is_relation or fk.name == skip or fk.related_model is None:
            continue
        value = getattr(row, fk.attname)
        if value is None:
            continue
        target = fk.target_field.attname  # type: ignore[attr-defined]
        if fk.related_model._base_manager.filter(**{target: value}).exists():
            continue
        if not fk.null:
            raise MoveError(f"{row._meta.label_lower} {row.pk}: {fk.name} {value} is not in this database")
        setattr(row, fk.attname, None)
        notes.append(f"{row._meta.label_lower} {row.pk}: {fk.name} {value} is not here, left empty")


def _rows_insert(archive: _Archive, *, rename: TenantRename | None, result_notes: list[str]) -> ImportResult:
    [tenant_object] = serializers.deserialize("python", archive.rows[TENANT_LABEL])
    tenant = tenant_object.object
    if not isinstance(tenant, Tenant):
        raise MoveError("the archive's tenant row is not a tenant")
    if rename is not None:
        tenant.id = rename.new_id
        tenant.schema_name = rename.new_subdomain
    tenant.save_base(raw=True, force_insert=True)
    result = ImportResult(tenant=tenant, notes=result_notes)
    result.rows[TENANT_LABEL] = {"inserted": 1}
    inserted_models: list[type[models.Model]] = []
    for kind in tenant_public_rows():
        outcomes: dict[str, int] = {}
        fk = _tenant_fk(kind.model, kind.tenant_field)
        for item in serializers.deserialize("python", archive.rows.get(kind.label, [])):
            row: Any = item.object
            pk_field = row._meta.pk
            setattr(row, fk.attname, tenant.pk)
            if rename is not None or kind.model._base_manager.filter(pk=row.pk).exists():
                if not _is_auto(pk_field):
                    raise MoveError(f"{kind.label} {row.pk} already exists in this database")
                row.pk = None  # a new id; the old one is another row's here
            if rename is not None and kind.copy is not None:
                row = kind.copy(row, rename)
                if row is None:
                    outcomes["left out"] = outcomes.get("left out", 0) + 1
                    continue
            _references_fill(row, kind.tenant_field, result_notes)
            if kind.put is not None:
                outcome = kind.put(row, tenant)
            else:
                row.save_base(raw=True, force_insert=True)
                outcome = "inserted"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        inserted_models.append(kind.model)
        result.rows[kind.label] = outcomes
    # Rows inserted with their ids do not advance the id sequences: move them past the ids.
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), inserted_models):
            cursor.execute(statement)
    return result


def tenant_import(
    *,
    source: str,
    rename: str | None = None,
    key: str | None = None,
    progress: Progress = _quiet,
) -> ImportResult:
    """Put the tenant of archive ``source`` (a file or ``s3://bucket/key``) into this database,
    under its id and subdomain, or with ``rename`` under a new id and that subdomain. Refuses
    (``ImportRefused``, nothing changed) an archive of another migration state, a tenant whose
    id, subdomain, schema or domain is taken here (without ``rename``)."""
    connection.set_schema_to_public()
    try:
        with target_fetched(source) as path, tempfile.TemporaryDirectory(prefix="leanvibe-import-") as tmp:
            progress(f"reading {source} ...")
            archive = _archive_open(path, Path(tmp), key)
            return _archive_import(archive, rename=rename, progress=progress)
    except TargetError as exc:
        raise ImportRefused(str(exc)) from exc


def _archive_import(archive: _Archive, *, rename: str | None, progress: Progress) -> ImportResult:
    manifest = archive.manifest
    _migrations_check(manifest)
    if get_public_schema_name() in pending_migrations():
        raise ImportRefused(
            "this database's public schema lacks migrations of the code: run manage.py platform_migrate first"
        )
    source_schema, tenant_id = str(manifest.get("schema")), str(manifest.get("tenant_id"))
    [tenant_row] = archive.rows[TENANT_LABEL]
    named = (str(tenant_row.get("pk")), tenant_row.get("fields", {}).get("schema_name"))
    if named != (tenant_id, source_schema):
        raise ImportRefused("the archive's manifest and tenant row disagree")
    domains = [str(item["fields"]["domain"]) for item in archive.rows.get("tenants.domain", [])]
    renamed: TenantRename | None = None
    if rename is not None:
        rename = rename.strip().lower()
        if not VALID_SUBDOMAIN.match(rename) or is_reserved(rename):
            raise ImportRefused(
                f"{rename!r} is not a valid subdomain (a-z, 0-9 and -, at most 30, not reserved)"
            )
        renamed = TenantRename(
            old_id=uuid.UUID(tenant_id),
            new_id=uuid.uuid4(),
            old_subdomain=source_schema,
            new_subdomain=rename,
        )
        prefix = f"{source_schema}."
        domains = [f"{rename}.{name[len(prefix) :]}" for name in domains if name.startswith(prefix)]
        conflicts = _conflicts(str(renamed.new_id), rename, domains)
    else:
        conflicts = _conflicts(tenant_id, source_schema, domains)
    if conflicts:
        raise ImportRefused(
            "already in this database: "
            + ", ".join(conflicts)
            + ("" if rename else "; import with --rename NEW")
        )
    schema = renamed.new_subdomain if renamed else source_schema
    progress(f"restoring schema {schema} ...")
    _schema_restore(archive.dump, source_schema=source_schema, schema=schema)
    progress("inserting its public rows ...")
    try:
        with transaction.atomic():
            return _rows_insert(archive, rename=renamed, result_notes=[])
    except BaseException as exc:
        schema_drop(schema)  # no half tenant: the rows rolled back, the schema goes too
        if isinstance(exc, DatabaseError | DeserializationError):
            raise MoveError(f"the public rows do not go in, nothing was imported: {exc}") from exc
        raise
