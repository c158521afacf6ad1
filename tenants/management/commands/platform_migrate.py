"""Migrate everything a deploy needs: the public schema, the template, every tenant, the pool.

Tenant schemas whose migrations are current are found in one query across all of them
(``leanvibe.health.pending_migrations``) and skipped: a deploy without a new migration touches no
tenant schema. The others are migrated in parallel worker processes (``--jobs``), each schema on
its own: one that fails is reported and the others go on; the exit code says whether all did.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from leanvibe.db import connection
from leanvibe.health import pending_migrations
from tenants import schemas
from tenants.models import Tenant


def schema_migrate(schema_name: str) -> tuple[str, float, str]:
    """Migrate one tenant schema; returns (schema, seconds, error or "")."""
    started = time.perf_counter()
    try:
        call_command("migrate_schemas", schema_name=schema_name, tenant=True, interactive=False, verbosity=0)
    except Exception as exc:  # reported per schema; the others go on
        return (
            schema_name,
            time.perf_counter() - started,
            f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}",
        )
    finally:
        connection.set_schema_to_public()
    return schema_name, time.perf_counter() - started, ""


def _child_start() -> None:
    # A forked child must not use the parent's connections (closed before forking, so none is open).
    connections.close_all()


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // max(total, 1)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


class Command(BaseCommand):
    help = "Migrate the public schema, the tenant template schema and every tenant; refill the pool."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-pool", action="store_true", help="Do not refill the schema pool.")
        parser.add_argument(
            "--jobs",
            type=int,
            default=min(4, os.cpu_count() or 1),
            help="Worker processes migrating tenant schemas in parallel (default: cores, at most 4).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        self.stdout.write("[1/4] public schema")
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=max(0, verbosity - 1))
        self.stdout.write("[2/4] tenant template schema")
        schemas.template_migrate(verbosity=max(0, verbosity - 1))
        tenants = list(Tenant.objects.order_by("schema_name").values_list("schema_name", flat=True))
        tenant_set = set(tenants)
        pending = [schema for schema in pending_migrations() if schema in tenant_set]
        jobs = max(1, min(options["jobs"], len(pending)))
        parallel = jobs > 1 and not connection.in_atomic_block
        self.stdout.write(
            f"[3/4] {len(tenants)} tenant schema(s): {len(tenants) - len(pending)} current, "
            f"{len(pending)} to migrate" + (f" ({jobs} processes)" if parallel else "")
        )
        failed = self._migrate(pending, jobs if parallel else 1, tracebacks=verbosity >= 2)
        if options["no_pool"]:
            self.stdout.write("[4/4] schema pool: skipped")
        else:
            made = schemas.schema_pool_refill()
            self.stdout.write(f"[4/4] schema pool: {made} new clone(s)")
        if failed:
            self.stderr.write(self.style.ERROR(f"{len(failed)} tenant schema(s) failed: {', '.join(failed)}"))
            sys.exit(1)
        self.stdout.write(self.style.SUCCESS("All schemas are migrated."))

    def _migrate(self, pending: list[str], jobs: int, *, tracebacks: bool) -> list[str]:
        """Migrate ``pending`` (in ``jobs`` processes when more than one); the failed schemas."""
        failed: list[str] = []
        started = time.perf_counter()

        def report(index: int, schema: str, seconds: float, error: str) -> None:
            outcome = "ok" if not error else "FAILED"
            self.stdout.write(f"      {_bar(index, len(pending))} {schema} {outcome} ({seconds:.1f} s)")
            if error:
                failed.append(schema)
                self.stderr.write(f"      {schema}: {error.strip().splitlines()[0]}")
                if tracebacks:
                    self.stderr.write(error)

        if jobs == 1:
            for index, schema in enumerate(pending, 1):
                report(index, *schema_migrate(schema))
        else:
            connections.close_all()  # the children open their own
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_child_start) as pool:
                futures = [pool.submit(schema_migrate, schema) for schema in pending]
                for index, future in enumerate(as_completed(futures), 1):
                    report(index, *future.result())
        if pending:
            self.stdout.write(
                f"      {len(pending) - len(failed)} migrated, {len(failed)} failed "
                f"in {time.perf_counter() - started:.1f} s"
            )
        return failed
