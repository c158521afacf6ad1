"""A deploy's migrations across many tenant schemas when there is nothing to migrate.

Setup (timed apart, not part of the target): ``schemas`` tenant schemas, each a copy of the
migrated template (never migrated), with its ``Tenant`` row. They are made by
``tenants.schemas.schema_copy_template_many`` (the template's ``pg_dump`` replayed under each
name: tenants/tests/test_schema_copy.py shows its copies equal the template and a clone), not by
``clone_schema`` as provisioning does: a clone reads catalogue views that grow with every schema,
so the 1,000th clone is many times slower than the first (1,000 would take about an hour).
Then, timed:

- ours: ``manage.py platform_migrate --no-pool`` over all of them (public schema, template, then
  the tenant schemas: one query finds that none is behind, none is touched);
- baseline: django-tenants' stock ``migrate_schemas --tenant`` for one schema at a time, as its
  standard executor runs every tenant, on a sample of ``sample`` schemas, scaled to all of them
  (the stock command over 1,000 schemas takes many minutes; django-tenants #719 reports about
  12 minutes for 900).

Target: the no-op ``platform_migrate`` over 1,000 schemas in at most 2 minutes on 2 cores; the
ratio stock (scaled) / ours is printed.
"""

from __future__ import annotations

import io
import time
import uuid

from bench import Samples, Verdict, fmt_seconds, print_table, progress, progress_counter, to_public

TARGET_SECONDS = 120.0
TARGET_SCHEMAS = 1000
BATCH = 10  # schemas copied in one transaction


def _copies(count: int) -> list[str]:
    """``count`` tenant schemas, each a copy of the template, and their ``Tenant`` rows."""
    from django.db import transaction

    from tenants import schemas
    from tenants.models import Tenant

    to_public()
    started = time.perf_counter()
    # The template's pg_dump, once; replayed under each name, BATCH schemas a transaction.
    script = schemas.schema_template_script()
    report = progress_counter(
        "schemas copied from the template", count, every=max(BATCH, count // 10 // BATCH * BATCH)
    )
    made: list[str] = []
    run = uuid.uuid4().hex[:6]
    for first in range(0, count, BATCH):
        names = [f"mig-{index:05d}-{run}" for index in range(first, min(count, first + BATCH))]
        with transaction.atomic():
            schemas.schema_copy_template_many(names, script=script)
            # The rows only (bulk_create runs no save(): django-tenants would migrate a new schema).
            Tenant.objects.bulk_create(
                Tenant(
                    schema_name=name,
                    organization_name=f"Migrate Bench {name}",
                    billing_email=f"billing-{name}@migrate.example.com",
                )
                for name in names
            )
        made += names
        report(len(made))
    progress(f"{count} tenant schemas copied in {time.perf_counter() - started:.1f} s")
    return made


def run(*, schemas: int = TARGET_SCHEMAS, sample: int = 50) -> list[Verdict]:
    from django.core.management import call_command

    from leanvibe.health import pending_migrations

    print(f"\n== migrations: a no-op deploy over {schemas} tenant schemas ==", flush=True)
    started = time.perf_counter()
    made = _copies(schemas)
    built = time.perf_counter() - started
    if pending_migrations():
        raise RuntimeError("the copied schemas are not current: the benchmark would measure migrating")

    ours = Samples(f"platform_migrate --no-pool, {schemas} schemas (no-op)")
    out = io.StringIO()
    t0 = time.perf_counter()
    call_command("platform_migrate", no_pool=True, stdout=out, verbosity=1)
    ours.add(time.perf_counter() - t0)
    summary = [line for line in out.getvalue().splitlines() if line.startswith("[3/4]")]
    progress(f"ours: {fmt_seconds(ours.values[0])}; {summary[0] if summary else ''}")

    stock = Samples(f"migrate_schemas --tenant --schema <s>, {sample} of them (stock, one by one)")
    step = max(1, len(made) // sample)
    chosen = made[::step][:sample]
    report = progress_counter("stock migrate_schemas", len(chosen), every=max(1, len(chosen) // 5))
    for index, schema in enumerate(chosen, 1):
        t0 = time.perf_counter()
        call_command("migrate_schemas", schema_name=schema, tenant=True, interactive=False, verbosity=0)
        stock.add(time.perf_counter() - t0)
        report(index)
    to_public()
    stock_total = sum(stock.values) / len(stock.values) * schemas
    ours_total = ours.values[0]
    ratio = stock_total / ours_total
    print_table(f"migrations ({time.perf_counter() - started:.0f} s)", [ours, stock])
    print()
    print(f"  setup: {schemas} schemas copied from the template in {built:.1f} s (not timed below)")
    print(f"  ours: {schemas} schemas in {ours_total:.1f} s ({ours_total / schemas * 1000:.1f} ms a schema)")
    each = sum(stock.values) / len(stock.values)
    print(
        f"  stock, scaled: {stock_total:.0f} s for {schemas} ({each:.2f} s a schema over "
        f"{len(stock.values)}); ratio stock / ours: {ratio:.0f}x"
    )
    passed = ours_total <= TARGET_SECONDS * schemas / TARGET_SCHEMAS
    return [
        Verdict(
            f"migrations: no-op platform_migrate over {TARGET_SCHEMAS} schemas <= {TARGET_SECONDS:.0f} s "
            f"(scaled to {schemas})",
            passed,
            f"{ours_total:.1f} s for {schemas} schemas; stock migrate_schemas {stock_total:.0f} s scaled "
            f"({ratio:.0f}x)",
        )
    ]
