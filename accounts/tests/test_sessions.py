"""A member's sessions (web and API): listing, ending one, admins ending all of a member's."""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import AuditEvent, Role, User
from accounts.services import user_create

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"


def _web_login(handle, email=None, password=None, ip="203.0.113.7") -> Client:
    client = Client(HTTP_HOST=handle.host, HTTP_USER_AGENT=BROWSER, REMOTE_ADDR=ip)
    response = client.post(
        "/accounts/login/", {"login": email or handle.owner_email, "password": password or handle.password}
    )
    assert response.status_code == 302, response.content[:500]
    assert client.get("/").status_code == 200
    return client


def _sessions(api, handle, token):
    response = api.get("/api/v1/auth/sessions", host=handle.host, token=token)
    assert response.status_code == 200
    return response.body["results"]


def _member(handle, email="member@example.com", role=Role.MEMBER) -> User:
    with schema_context(handle.tenant.schema_name):
        return user_create(email=email, password=handle.password, role=role)


def test_sessions_lists_web_sessions_and_api_tokens(api, tenant_a):
    _web_login(tenant_a)
    token = tenant_a.login(api)
    other = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": tenant_a.password},
        host=tenant_a.host,
        headers={"User-Agent": "leanvibe-cli/2.0"},
        remote_addr="198.51.100.9",
    ).body
    sessions = _sessions(api, tenant_a, token)
    assert {s["kind"] for s in sessions} == {"web", "api"}
    assert len(sessions) == 3
    for s in sessions:
        assert set(s) == {"id", "kind", "ip_address", "user_agent", "created_at", "last_activity", "current"}
    web = next(s for s in sessions if s["kind"] == "web")
    assert web["ip_address"] == "203.0.113.7" and web["user_agent"] == BROWSER and not web["current"]
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1 and current[0]["kind"] == "api"
    cli = next(s for s in sessions if s["user_agent"] == "leanvibe-cli/2.0")
    assert cli["ip_address"] == "198.51.100.9" and not cli["current"]
    # Using a token moves its last activity forward (kept in the cache, not the database).
    before = cli["last_activity"]
    assert api.get("/api/v1/projects", host=tenant_a.host, token=other["access_token"]).status_code == 200
    after = next(s for s in _sessions(api, tenant_a, token) if s["id"] == cli["id"])["last_activity"]
    assert after > before


def test_a_refreshed_token_stays_one_session(api, tenant_a):
    pair = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": tenant_a.password},
        host=tenant_a.host,
    ).body
    fresh = api.post(
        "/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, host=tenant_a.host
    ).body
    sessions = _sessions(api, tenant_a, fresh["access_token"])
    assert len(sessions) == 1 and sessions[0]["current"]


def test_ending_an_api_session_stops_its_tokens_at_once(api, tenant_a):
    token = tenant_a.login(api)
    victim = api.post(
        "/api/v1/auth/login",
        {"email": tenant_a.owner_email, "password": tenant_a.password},
        host=tenant_a.host,
    ).body
    target = next(s for s in _sessions(api, tenant_a, token) if not s["current"])
    assert api.get("/api/v1/projects", host=tenant_a.host, token=victim["access_token"]).status_code == 200

    response = api.delete(f"/api/v1/auth/sessions/{target['id']}", host=tenant_a.host, token=token)
    assert response.status_code == 204
    assert api.get("/api/v1/projects", host=tenant_a.host, token=victim["access_token"]).status_code == 401
    refreshed = api.post(
        "/api/v1/auth/refresh", {"refresh_token": victim["refresh_token"]}, host=tenant_a.host
    )
    assert refreshed.status_code == 401
    assert [s["id"] for s in _sessions(api, tenant_a, token)] != [target["id"]]
    assert target["id"] not in {s["id"] for s in _sessions(api, tenant_a, token)}
    # Ending it again, or an unknown id, is a 404.
    assert (
        api.delete(f"/api/v1/auth/sessions/{target['id']}", host=tenant_a.host, token=token).status_code
        == 404
    )
    for bad in ("999999", "not-a-session", "0", "9" * 30, "x" * 100):
        assert api.delete(f"/api/v1/auth/sessions/{bad}", host=tenant_a.host, token=token).status_code == 404
    with schema_context(tenant_a.tenant.schema_name):
        event = AuditEvent.objects.get(type=AuditEvent.Type.SESSION_ENDED)
    assert event.data == {"kind": "api", "session": target["id"]}
    assert event.actor_email == tenant_a.owner_email


def test_ending_a_web_session_signs_that_browser_out_at_once(api, tenant_a):
    browser = _web_login(tenant_a)
    token = tenant_a.login(api)
    web = next(s for s in _sessions(api, tenant_a, token) if s["kind"] == "web")
    assert (
        api.delete(f"/api/v1/auth/sessions/{web['id']}", host=tenant_a.host, token=token).status_code == 204
    )
    response = browser.get("/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert all(s["kind"] == "api" for s in _sessions(api, tenant_a, token))


def test_a_member_cannot_end_someone_elses_session(api, tenant_a):
    _member(tenant_a)
    owner_token = tenant_a.login(api)
    _web_login(tenant_a)
    member_token = tenant_a.login(api, email="member@example.com")
    owner_sessions = _sessions(api, tenant_a, owner_token)
    member_ids = {s["id"] for s in _sessions(api, tenant_a, member_token)}
    assert not member_ids & {s["id"] for s in owner_sessions}
    for s in owner_sessions:
        response = api.delete(f"/api/v1/auth/sessions/{s['id']}", host=tenant_a.host, token=member_token)
        assert response.status_code == 404
    assert api.get("/api/v1/projects", host=tenant_a.host, token=owner_token).status_code == 200


def test_admin_ends_every_session_of_a_member(api, tenant_a):
    member = _member(tenant_a)
    _member(tenant_a, "admin@example.com", Role.ADMIN)
    browser = _web_login(tenant_a, email="member@example.com")
    member_token = tenant_a.login(api, email="member@example.com")
    admin_token = tenant_a.login(api, email="admin@example.com")

    # A member may not do it (role escalation), not even to themselves through this route.
    response = api.delete(f"/api/v1/users/{member.pk}/sessions", host=tenant_a.host, token=member_token)
    assert response.status_code == 403
    assert api.get("/api/v1/projects", host=tenant_a.host, token=member_token).status_code == 200

    response = api.delete(f"/api/v1/users/{member.pk}/sessions", host=tenant_a.host, token=admin_token)
    assert response.status_code == 200
    assert response.body == {"web_sessions": 1, "tokens_revoked": 2}
    assert api.get("/api/v1/projects", host=tenant_a.host, token=member_token).status_code == 401
    assert browser.get("/").status_code == 302
    assert api.get("/api/v1/projects", host=tenant_a.host, token=admin_token).status_code == 200
    with schema_context(tenant_a.tenant.schema_name):
        event = AuditEvent.objects.get(type=AuditEvent.Type.SESSION_ENDED)
    assert event.actor_email == "admin@example.com" and event.target_user_id == member.pk
    assert (
        api.delete("/api/v1/users/999999/sessions", host=tenant_a.host, token=admin_token).status_code == 404
    )
    assert api.delete("/api/v1/users/abc/sessions", host=tenant_a.host, token=admin_token).status_code == 404


def test_an_admin_cannot_sign_out_an_owner(api, tenant_a):
    _member(tenant_a, "admin@example.com", Role.ADMIN)
    admin_token = tenant_a.login(api, email="admin@example.com")
    owner_token = tenant_a.login(api)
    with schema_context(tenant_a.tenant.schema_name):
        owner_id = User.objects.get(email=tenant_a.owner_email).pk
    response = api.delete(f"/api/v1/users/{owner_id}/sessions", host=tenant_a.host, token=admin_token)
    assert response.status_code == 403
    assert api.get("/api/v1/projects", host=tenant_a.host, token=owner_token).status_code == 200


# --- the sessions page -----------------------------------------------------------------------
def test_sessions_page_lists_and_ends_sessions(api, tenant_a):
    browser = _web_login(tenant_a)
    other_browser = _web_login(tenant_a, ip="192.0.2.44")
    tenant_a.login(api)
    page = browser.get("/account/sessions/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "leanvibe.css" in html and "Sessions" in html
    assert "192.0.2.44" in html and "This browser" in html and html.count('class="project session"') == 3

    with schema_context(tenant_a.tenant.schema_name):
        from allauth.usersessions.models import UserSession

        other_id = UserSession.objects.get(ip="192.0.2.44").pk
    response = browser.post(f"/account/sessions/{other_id}/end/")
    assert response.status_code == 302 and response["Location"].endswith("/account/sessions/")
    assert other_browser.get("/").status_code == 302  # signed out
    assert browser.get("/").status_code == 200  # still signed in
    assert "192.0.2.44" not in browser.get("/account/sessions/").content.decode()


def test_sessions_page_requires_sign_in(tenant_a):
    response = Client(HTTP_HOST=tenant_a.host).get("/account/sessions/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
