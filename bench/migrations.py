"""A deploy's migrations across many tenant schemas when there is nothing to migrate.

Setup (not timed): ``schemas`` tenant schemas made by cloning the migrated template
(``tenants.schemas.schema_clone_template``, as provisioning does without a pool; never by
migrating), each with its ``Tenant`` row. Then, timed:

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


def _clones(count: int) -> list[str]:
    from tenants import schemas
    from tenants.models import Tenant

    to_public()
    report = progress_counter("schemas cloned from the template", count, every=max(1, count // 10))
    made: list[str] = []
    rows = []
    started = time.perf_counter()
    for index in range(count):
        name = f"mig-{index:05d}-{uuid.uuid4().hex[:6]}"
        schemas.schema_clone_template(name)
        made.append(name)
        rows.append(
            Tenant(
                schema_name=name,
                organization_name=f"Migrate Bench {index:05d}",
                billing_email=f"billing{index}@migrate.example.com",
            )
        )
        report(index + 1)
    # The rows only (bulk_create runs no save(): django-tenants would create the schema by migrating).
    Tenant.objects.bulk_create(rows, batch_size=500)
    progress(f"{count} tenant schemas cloned in {time.perf_counter() - started:.0f} s")
    return made


def run(*, schemas: int = TARGET_SCHEMAS, sample: int = 50) -> list[Verdict]:
    from django.core.management import call_command

    from leanvibe.health import pending_migrations

    print(f"\n== migrations: a no-op deploy over {schemas} tenant schemas ==", flush=True)
    started = time.perf_counter()
    made = _clones(schemas)
    if pending_migrations():
        raise RuntimeError("the cloned schemas are not current: the benchmark would measure migrating")

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
