"""Tenant schemas: a migrated template, a warm pool of its clones, and the clone itself.

Every tenant schema starts as a copy of ``settings.TENANT_TEMPLATE_SCHEMA``, which is migrated
on every deploy (``manage.py platform_migrate``). Copying it with PostgreSQL's ``clone_schema``
(django-tenants) takes a few hundred milliseconds; to make sign-up instant, a Celery task keeps
a few clones ready (``PooledSchema``) and provisioning renames one (``ALTER SCHEMA ... RENAME``,
a catalogue update). A pooled clone is used only while its migrations match the template's.

Many schemas at once (the migration benchmark's 1,000) are copied another way:
``schema_copy_template_many`` replays the template's ``pg_dump`` under each new name, which
stays fast however many schemas exist (``clone_schema`` reads catalogue views that grow with
every schema).
"""

from __future__ import annotations

import logging
import re
import secrets
import subprocess
from collections.abc import Sequence

from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django_tenants.clone import CloneSchema
from django_tenants.postgresql_backend.base import is_valid_schema_name
from django_tenants.utils import schema_exists

from leanvibe.db import connection
from leanvibe.platform.backups import connection_args, pg_program
from tenants.models import PooledSchema

logger = logging.getLogger(__name__)


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def schema_fingerprint(schema_name: str) -> str:
    """A digest of the migrations recorded in ``schema_name`` (empty if it has none)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"{_quote(schema_name)}.django_migrations"])
        if not cursor.fetchone()[0]:
            return ""
        table = f"{_quote(schema_name)}.django_migrations"
        digest = "md5(coalesce(string_agg(app || '.' || name, ',' ORDER BY app, name), ''))"
        cursor.execute(f"SELECT {digest} FROM {table}")  # noqa: S608 - quoted identifier
        return str(cursor.fetchone()[0])


def template_migrate(*, verbosity: int = 1) -> None:
    """Create the template schema if missing and apply every tenant migration to it."""
    template = settings.TENANT_TEMPLATE_SCHEMA
    connection.set_schema_to_public()
    if not schema_exists(template):
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {_quote(template)}")
    call_command("migrate_schemas", schema_name=template, tenant=True, interactive=False, verbosity=verbosity)
    connection.set_schema_to_public()
    clone_function_install()


def clone_function_install() -> None:
    """(Re)create django-tenants' ``clone_schema`` SQL function. Done once per deploy: replacing
    a 4,000-line PL/pgSQL function before every clone (as ``CloneSchema.clone_schema`` does)
    makes each later clone in the same session slower, as PostgreSQL keeps every compiled copy."""
    CloneSchema()._create_clone_schema_function()


def schema_clone_template(schema_name: str) -> None:
    """Copy the template schema, structure and rows (migration history included), to a new one."""
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_regprocedure('public.clone_schema(text, text, public.cloneparms[])') IS NULL"
        )
        if cursor.fetchone()[0]:
            clone_function_install()
        if schema_exists(schema_name, case_sensitive=False):
            raise ValueError(f"schema {schema_name!r} already exists")
        cursor.execute(
            "SELECT public.clone_schema(%s::text, %s::text, 'DATA'::public.cloneparms)",
            [settings.TENANT_TEMPLATE_SCHEMA, schema_name],
        )


def schema_claim_pooled(schema_name: str) -> bool:
    """Rename a current pooled clone to ``schema_name``. Must run inside the caller's transaction,
    so that a failed provisioning puts the clone back. Returns False when the pool is empty."""
    fingerprint = schema_fingerprint(settings.TENANT_TEMPLATE_SCHEMA)
    entry = (
        PooledSchema.objects.select_for_update(skip_locked=True)
        .filter(template_fingerprint=fingerprint)
        .order_by("created_at")
        .first()
    )
    if entry is None:
        return False
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER SCHEMA {_quote(entry.schema_name)} RENAME TO {_quote(schema_name)}")
    entry.delete()
    return True


def schema_create_for_tenant(schema_name: str) -> str:
    """Make the schema of a new tenant. Returns ``"pool"`` or ``"clone"`` (how it was made)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("schema_create_for_tenant must run inside the provisioning transaction")
    if schema_claim_pooled(schema_name):
        return "pool"
    schema_clone_template(schema_name)
    return "clone"


def schema_drop(schema_name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {_quote(schema_name)} CASCADE")


def schema_pool_refill(*, size: int | None = None) -> int:
    """Drop pooled clones of an older template, then clone until ``size`` are ready.
    Returns how many clones were made."""
    size = settings.TENANT_POOL_SIZE if size is None else size
    connection.set_schema_to_public()
    fingerprint = schema_fingerprint(settings.TENANT_TEMPLATE_SCHEMA)
    if not fingerprint:
        logger.warning("template schema %s is not migrated; pool left empty", settings.TENANT_TEMPLATE_SCHEMA)
        return 0
    for stale in PooledSchema.objects.exclude(template_fingerprint=fingerprint):
        with transaction.atomic():
            schema_drop(stale.schema_name)
            stale.delete()
    made = 0
    while PooledSchema.objects.filter(template_fingerprint=fingerprint).count() < size:
        name = f"pool_{secrets.token_hex(8)}"
        with transaction.atomic():
            schema_clone_template(name)
            PooledSchema.objects.create(schema_name=name, template_fingerprint=fingerprint)
        made += 1
    return made


# Stands for the new schema's quoted name in the template's script (never a PostgreSQL identifier).
_SCHEMA_MARK = "\x01schema\x01"


def schema_template_script() -> str:
    """The template schema as one SQL script that creates a copy of it: ``pg_dump``'s plain
    output (tables, sequences and their values, indexes, constraints, grants, and the rows:
    migration history, content types, permissions), the template's name replaced by a mark
    that :func:`schema_copy_template_many` fills in. The dump's session settings become
    transaction-local ones (``SET LOCAL``), so that they end with the copying transaction."""
    template = settings.TENANT_TEMPLATE_SCHEMA
    args, env = connection_args(transaction.get_connection().settings_dict)
    command = [pg_program("pg_dump"), "--schema", template, "--no-owner", "--inserts"]
    command += ["--rows-per-insert", "1000", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True)  # noqa: S603 - our program
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump of the template failed: {result.stderr.strip()[-1000:]}")
    script = result.stdout
    if f"CREATE SCHEMA {_quote_dumped(template)};" not in script:
        raise RuntimeError(f"the template schema {template!r} is missing or empty")
    # psql meta-commands (\restrict, \unrestrict: pg_dump's guard against a hostile server).
    script = re.sub(r"^\\(un)?restrict \S+$", "", script, flags=re.MULTILINE)
    script = re.sub(r"^SET (\w+) = ", r"SET LOCAL \1 = ", script, flags=re.MULTILINE)
    script = script.replace("set_config('search_path', '', false)", "set_config('search_path', '', true)")
    # The template's name where pg_dump writes it: as a qualifier (also inside setval's
    # 'schema.sequence' literals), and after CREATE SCHEMA.
    name = re.escape(_quote_dumped(template))
    script = re.sub(rf"(?<![\w$\"]){name}(?=\.)", _SCHEMA_MARK, script)
    script = re.sub(rf"^CREATE SCHEMA {name};$", f"CREATE SCHEMA {_SCHEMA_MARK};", script, flags=re.MULTILINE)
    if "set_config('search_path', '', true)" not in script:
        raise RuntimeError("pg_dump's output has no search_path reset: unknown format")
    return script


def _quote_dumped(name: str) -> str:
    """``name`` as pg_dump writes an identifier: bare when it is a plain lowercase word."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else connection.ops.quote_name(name)


def schema_copy_template_many(schema_names: Sequence[str], *, script: str | None = None) -> None:
    """Create every schema of ``schema_names`` as an exact copy of the template (structure,
    names of constraints and indexes, sequence values, rows), in one transaction. ``script`` is
    :func:`schema_template_script`'s output, to dump the template once for many calls.

    Unlike ``clone_schema`` this does not slow down as schemas multiply; its copies keep the
    template's own constraint names and sequence types, which ``clone_schema`` renames and widens
    (see tenants/tests/test_schema_copy.py). Provisioning still clones: this is for building many
    schemas at once (``python -m bench --only migrations``)."""
    for name in schema_names:
        if not is_valid_schema_name(name):  # no quotes, backslashes, semicolons; not pg_*
            raise ValueError(f"invalid schema name {name!r}")
    if len(set(schema_names)) != len(schema_names):
        raise ValueError("schema names repeat")
    script = schema_template_script() if script is None else script
    connection.set_schema_to_public()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE lower(nspname) = ANY(%s)",
            [[name.lower() for name in schema_names]],
        )
        taken = [row[0] for row in cursor.fetchall()]
        if taken:
            raise ValueError(f"schema(s) already exist: {', '.join(sorted(taken))}")
        cursor.execute("SELECT current_setting('search_path')")
        search_path = cursor.fetchone()[0]
        # One round trip: the scripts run as one multi-statement query (no parameters). The
        # dump empties the search path; the caller's is put back before anything else runs.
        cursor.execute("".join(script.replace(_SCHEMA_MARK, _quote(name)) for name in schema_names))
        cursor.execute("SELECT pg_catalog.set_config('search_path', %s, true)", [search_path])
