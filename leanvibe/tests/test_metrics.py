"""/metrics is for Prometheus, not for the internet; it sums every gunicorn worker and exposes
beat's snapshot of the platform's gauges."""

from __future__ import annotations

import http.client
import math
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from leanvibe import redis as lv_redis
from leanvibe.celery import app as celery_app
from leanvibe.metrics import (
    MetricsRegistryError,
    SnapshotGauge,
    metrics_snapshot_take,
    snapshot_gauge_register,
    snapshot_gauge_unregister,
    snapshot_key,
)
from leanvibe.platform import tasks as platform_tasks
from leanvibe.serving import server_process
from leanvibe.tests.metrics_helpers import parse, sample, scrape
from tenants.services import tenant_suspend


@pytest.mark.django_db
def test_metrics_without_a_token_answer_only_localhost(client, settings):
    settings.METRICS_TOKEN = ""
    local = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert local.status_code == 200
    assert b"django_http_requests" in local.content
    remote = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert remote.status_code == 404
    assert remote.json()["error"] == "not_found"


@pytest.mark.django_db
def test_a_proxy_on_this_machine_does_not_make_its_clients_local(client, settings):
    settings.METRICS_TOKEN = ""
    settings.NUM_PROXIES = 1
    forwarded = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert forwarded.status_code == 404
    # The client's own part of the header is not read: only what the proxy appended.
    forged = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1, 203.0.113.7")
    assert forged.status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200  # on the machine itself


@pytest.mark.django_db
def test_without_proxies_a_forged_header_does_not_make_a_client_local(client, settings):
    settings.METRICS_TOKEN = ""
    settings.NUM_PROXIES = 0
    forged = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert forged.status_code == 404


@pytest.mark.django_db
def test_metrics_with_a_token_require_it(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401
    wrong = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "not_authenticated"
    right = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert right.status_code == 200
    assert b"django_http_requests" in right.content


@pytest.mark.django_db
def test_metrics_are_not_served_on_a_tenant_host(client, tenant_a):
    assert client.get("/metrics", HTTP_HOST=tenant_a.host, REMOTE_ADDR="127.0.0.1").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["10.244.3.17:8000", "10.244.3.17", "[fd00::17]:8000"])
def test_a_scrape_of_a_pods_address_is_answered_with_the_same_guard(client, settings, host):
    """Prometheus scrapes each web pod by its IP: that Host is no site of ours, and still gets the
    metrics, for the token only."""
    settings.METRICS_TOKEN = "scrape-secret"
    scraped = client.get(
        "/metrics", HTTP_HOST=host, REMOTE_ADDR="10.0.0.5", HTTP_AUTHORIZATION="Bearer scrape-secret"
    )
    assert scraped.status_code == 200 and b"leanvibe_metrics_snapshot_age_seconds" in scraped.content
    assert client.get("/metrics", HTTP_HOST=host, REMOTE_ADDR="10.0.0.5").status_code == 401
    assert client.get("/metrics", HTTP_HOST=host, REMOTE_ADDR="127.0.0.1").status_code == 401
    assert client.get("/other", HTTP_HOST=host, REMOTE_ADDR="10.0.0.5").status_code == 400  # no site there


def test_data_dir_is_read_when_the_environment_is_prepared(tmp_path, monkeypatch):
    """LEANVIBE_DATA_DIR set in .env (read by the settings before this call) is honoured."""
    from leanvibe import embedded

    original = embedded.DATA_DIR
    monkeypatch.setenv("LEANVIBE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgres://unused/x")  # nothing embedded is started
    monkeypatch.setenv("REDIS_URL", "redis://unused/0")
    try:
        embedded.ensure_environment()
        assert tmp_path == embedded.DATA_DIR
    finally:
        embedded.DATA_DIR = original


# --- beat's snapshot of the platform's gauges ----------------------------------------------------


def test_the_snapshot_task_computes_the_gauges_a_scrape_then_reads(
    client, make_tenant, django_assert_num_queries
):
    make_tenant("One", plan="starter")
    make_tenant("Two", plan="professional")
    suspended = make_tenant("Three", plan="professional").tenant
    tenant_suspend(tenant=suspended)
    lv_redis.client().delete(snapshot_key())
    before = scrape(client)
    assert sample(before, "leanvibe_metrics_snapshot_age_seconds") == math.inf  # beat never ran
    assert sample(before, "leanvibe_tenants", status="active", plan="starter") is None

    platform_tasks.metrics_snapshot.apply().get()

    with django_assert_num_queries(0):  # one Redis GET; no query, however many tenants
        after = scrape(client)
    assert sample(after, "leanvibe_tenants", status="active", plan="starter") == 1
    assert sample(after, "leanvibe_tenants", status="active", plan="professional") == 1
    assert sample(after, "leanvibe_tenants", status="suspended", plan="professional") == 1
    assert sample(after, "leanvibe_tenants", status="active", plan="enterprise") == 0
    assert 0 <= (sample(after, "leanvibe_metrics_snapshot_age_seconds") or -1) < 30
    assert sample(after, "leanvibe_billing_mrr_cents") == 0  # no subscription in this database
    assert sample(after, "leanvibe_tenants_in_dunning") == 0


def test_the_snapshot_counts_the_messages_waiting_in_each_queue(client, db):
    queue = celery_app.conf.task_default_queue
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)
        for _ in range(3):
            celery_app.send_task(
                "leanvibe.platform.tasks.platform_heartbeat", queue=queue, connection=connection
            )
    try:
        metrics_snapshot_take()
        assert sample(scrape(client), "leanvibe_celery_queue_length", queue=queue) == 3
    finally:
        with celery_app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)
    metrics_snapshot_take()
    assert sample(scrape(client), "leanvibe_celery_queue_length", queue=queue) == 0


def test_an_old_snapshot_shows_its_age(client, db):
    metrics_snapshot_take(now=time.time() - 900)
    age = sample(scrape(client), "leanvibe_metrics_snapshot_age_seconds")
    assert age is not None and 899 < age < 930


def test_a_failing_gauge_leaves_the_others_in_the_snapshot(client, db):
    def broken() -> dict[tuple[str, ...], float]:
        raise RuntimeError("the data source is down")

    gauge = SnapshotGauge(name="leanvibe_test_broken", documentation="Test.", labels=(), compute=broken)
    snapshot_gauge_register(gauge)
    try:
        snapshot = metrics_snapshot_take()
    finally:
        snapshot_gauge_unregister(gauge.name)
    assert "leanvibe_test_broken" not in snapshot["gauges"]
    assert "leanvibe_tenants" in snapshot["gauges"]


def test_a_gauge_name_is_registered_once():
    gauge = SnapshotGauge(name="leanvibe_tenants", documentation="Other.", labels=(), compute=dict)
    with pytest.raises(MetricsRegistryError):
        snapshot_gauge_register(gauge)


# --- several gunicorn workers: prometheus_client's multiprocess mode ------------------------------
# /health answers before django-prometheus' middleware: the test counts 404s of an unknown page.
NOT_FOUND = "django_http_responses_total_by_status_total"
TOKEN = "multiprocess-test-token"


def _get_missing(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/no-such-page", headers={"Host": "localhost"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def _per_worker(folder: Path, scratch: Path) -> dict[int, float]:
    """404 answers counted by each process, read from its own file alone."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        alone = scratch / path.stem
        alone.mkdir()
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        counts[int(path.stem.rsplit("_", 1)[1])] = (
            registry.get_sample_value(NOT_FOUND, {"status": "404"}) or 0
        )
    return counts


@pytest.mark.integration
def test_two_gunicorn_workers_counts_are_summed_by_every_scrape(db, tmp_path):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"a previous run's file")  # emptied at start
    database_url = (
        urlsplit(django_settings.DATABASE_URL)._replace(path="/" + connection.settings_dict["NAME"]).geturl()
    )
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": django_settings.REDIS_URL,
        "CACHE_KEY_PREFIX": django_settings.CACHE_KEY_PREFIX,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "METRICS_TOKEN": TOKEN,
    }
    command = [str(Path(sys.executable).parent / "gunicorn"), "leanvibe.wsgi:application"]
    command += ["--config", "python:leanvibe.gunicorn_conf", "--bind", "127.0.0.1:{port}", "--workers", "2"]
    with server_process(command, name="multiprocess", env=env) as port:
        sent = 0
        counts: dict[int, float] = {}
        with ThreadPoolExecutor(max_workers=4) as pool:
            for round_ in range(20):  # until both workers have served some
                statuses = list(pool.map(lambda _: _get_missing(port), range(20)))
                assert set(statuses) == {404}
                sent += len(statuses)
                scratch = tmp_path / f"round-{round_}"
                scratch.mkdir()
                counts = {pid: n for pid, n in _per_worker(folder, scratch).items() if n}
                if len(counts) >= 2:
                    break
        assert len(counts) == 2, f"one worker served every request: {counts}"
        assert sum(counts.values()) == sent

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/metrics", headers={"Host": "localhost", "Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        body = response.read().decode()
        conn.close()
    assert response.status == 200
    assert sample(parse(body), NOT_FOUND, status="404") == sent  # both workers, summed
    assert not (folder / "counter_1.db").exists()


# --- a Celery worker's own metrics port -----------------------------------------------------------
HEARTBEAT = "leanvibe.platform.tasks.platform_heartbeat"


def _get_metrics(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read().decode()
    conn.close()
    return body


@pytest.mark.integration
def test_a_prefork_worker_serves_its_childrens_counts_on_its_metrics_port(db):
    """``celery worker`` with ``WORKER_METRICS_PORT`` and two prefork children: the tasks they
    ran, counted in the children, are served by the main process."""
    queue = f"{celery_app.conf.task_default_queue}-metrics-port"
    database_url = (
        urlsplit(django_settings.DATABASE_URL)._replace(path="/" + connection.settings_dict["NAME"]).geturl()
    )
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": django_settings.REDIS_URL,
        "CACHE_KEY_PREFIX": django_settings.CACHE_KEY_PREFIX,
    }
    command = [
        "env",
        "WORKER_METRICS_PORT={port}",
        sys.executable,
        "-m",
        "celery",
        "-A",
        "leanvibe",
        "worker",
    ]
    command += ["--pool", "prefork", "--concurrency", "2", "--queues", queue, "--loglevel", "WARNING"]
    try:
        _worker_metrics_check(command, env, queue)
    finally:
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
        celery_app.amqp.queues.pop(queue, None)  # send_task declared it: other tests expect one queue


def _worker_metrics_check(command: list[str], env: dict[str, str], queue: str) -> None:
    with server_process(command, name="worker-metrics", env=env, health="/metrics", timeout=90) as port:
        assert "leanvibe_tenants" not in _get_metrics(port)  # the snapshot is the web's to expose
        with celery_app.connection_for_write() as conn:
            for _ in range(6):
                celery_app.send_task(HEARTBEAT, queue=queue, connection=conn)
        deadline = time.monotonic() + 60
        ran = None
        while time.monotonic() < deadline:
            ran = sample(
                parse(_get_metrics(port)), "leanvibe_celery_tasks_total", task=HEARTBEAT, state="success"
            )
            if ran == 6:
                break
            time.sleep(0.5)
        assert ran == 6
