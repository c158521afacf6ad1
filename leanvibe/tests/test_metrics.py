"""/metrics is for Prometheus, not for the internet."""

from __future__ import annotations

import pytest


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
