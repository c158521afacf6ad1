"""The load benchmark (``python -m bench --only load``, bench/load.py) in small: a few seconds of
its mix against a real gunicorn (2 sync workers) on the test database, so the bench cannot rot
silently: every kind of request it sends must still be answered as it expects, and an answer
it does not expect must be counted as an error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection, connections

from bench import gunicorn
from bench.load import KINDS, VirtualUser, _closed_loop, load_measure, report_print
from leanvibe.celery import app as celery_app
from tenants.models import Tenant

pytestmark = pytest.mark.integration


def _database_url() -> str:
    return urlsplit(settings.DATABASE_URL)._replace(path="/" + connection.settings_dict["NAME"]).geturl()


@pytest.fixture
def dropped_afterwards(transactional_db: None) -> Iterator[None]:
    """The tenants the bench makes are committed (the server must see them): drop their schemas."""
    yield
    connections.close_all()
    for tenant in Tenant.objects.all():
        tenant.delete(force_drop=True)


def test_every_kind_of_request_is_answered_without_an_error(dropped_afterwards, capsys):
    assert celery_app.conf.task_default_queue.startswith("lvtest-")
    report = load_measure(
        database_url=_database_url(),
        tenants=3,
        seconds=3,
        concurrency=4,
        baseline_seconds=0.5,
        # Equal weights: each deck of 10 holds every kind once, so 3 s cover them all.
        weights=dict.fromkeys(KINDS, 1),
        env={"BENCH_CELERY_QUEUE": celery_app.conf.task_default_queue},
    )
    assert report.users == 3 * 4
    assert dict(report.mix.errors) == {}
    assert report.kinds_made == set(KINDS)
    assert report.mix.count >= 2 * len(KINDS)
    assert report.mix.seconds >= 3
    assert all(window.count > 0 and not window.errors for window in report.baselines)
    report_print(report, "load (test)")
    printed = capsys.readouterr().out
    assert "0 errors" in printed
    assert "mix / baseline" in printed


def test_an_unexpected_answer_is_counted_as_an_error(db):
    # No tenant has this host: the API answers 404, which the request does not expect.
    stranger = VirtualUser("nobody.localhost", "someone@example.com", "00000000-0000-0000-0000-000000000000")
    stranger.access = "not-a-token"
    with gunicorn(
        database_url=_database_url(), workers=1, env={"CACHE_KEY_PREFIX": settings.CACHE_KEY_PREFIX}
    ) as port:
        window = asyncio.run(
            _closed_loop(
                port,
                [stranger],
                seconds=0.5,
                concurrency=1,
                label="errors",
                choose=lambda rng: "api: list projects",
                seed=1,
            )
        )
    assert window.count == 0
    assert set(window.errors) == {("api: list projects", "HTTP 404")}
    assert window.error_count > 0
