"""The migrations on disk match the models, and the dj-stripe squash matches the installed dj-stripe."""

from __future__ import annotations

import importlib
import io
import pkgutil

import djstripe
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder


@pytest.mark.django_db
def test_every_model_change_has_its_migration() -> None:
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exit_:  # --check exits 1 when a migration is missing
        pytest.fail(f"models changed without a migration (exit {exit_.code}):\n{out.getvalue()}")


def test_djstripe_squash_replaces_every_migration_the_installed_package_ships() -> None:
    shipped = {
        ("djstripe", name)
        for _, name, is_pkg in pkgutil.iter_modules(importlib.import_module("djstripe.migrations").__path__)
        if not is_pkg and not name.startswith("_")
    }
    loader = MigrationLoader(None, ignore_no_migrations=True)
    ours = [key for key in loader.disk_migrations if key[0] == "djstripe"]
    assert len(ours) == 1, ours
    replaced = set(loader.disk_migrations[ours[0]].replaces)
    missing = shipped - replaced
    assert not missing, (
        f"dj-stripe {djstripe.__version__} ships migrations the squash does not replace: {sorted(missing)}; "
        "regenerate it (billing/migrations_djstripe/README.md)"
    )
    assert len(shipped) >= 3  # the package's folder was really read


@pytest.mark.django_db
def test_a_database_that_applied_djstripes_own_migrations_counts_the_squash_as_applied() -> None:
    """A database migrated before the squash existed (dj-stripe's three rows) needs nothing run."""
    squash = next(key for key in MigrationLoader(None).disk_migrations if key[0] == "djstripe")
    replaced = MigrationLoader(None).disk_migrations[squash].replaces
    recorder = MigrationRecorder(connection)
    recorder.record_unapplied(*squash)
    for app, name in replaced:
        recorder.record_applied(app, name)

    loader = MigrationLoader(connection)
    assert squash in loader.applied_migrations
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan([squash])
    assert plan == []
    # And a database with none of them applied gets the squash, not dj-stripe's own three.
    for app, name in replaced:
        recorder.record_unapplied(app, name)
    plan = MigrationExecutor(connection).migration_plan([squash])
    assert [migration.name for migration, _ in plan] == [squash[1]]
