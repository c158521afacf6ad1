"""The audit trail: ``GET /api/v1/audit-events`` and the audit log page (admins only)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import AuditEvent, Role, User
from accounts.services import user_create
from accounts.services.audit import audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(api, tenant_a):
    """Events of several types, actors and days in tenant A."""
    with schema_context(tenant_a.tenant.schema_name):
        user_create(email="member@example.com", password=tenant_a.password, role=Role.MEMBER)
        user_create(email="admin@example.com", password=tenant_a.password, role=Role.ADMIN)
    api.post("/api/v1/auth/login", {"email": "member@example.com", "password": "bad"}, host=tenant_a.host)
    api.post("/api/v1/auth/login", {"email": "ghost@example.com", "password": "bad"}, host=tenant_a.host)
    member_token = tenant_a.login(api, email="member@example.com")
    admin_token = tenant_a.login(api, email="admin@example.com")
    owner_token = tenant_a.login(api)
    with schema_context(tenant_a.tenant.schema_name):
        owner = User.objects.get(email=tenant_a.owner_email)
        old = audit_record(type=AuditEvent.Type.MEMBER_ROLE_CHANGED, actor=owner, role="admin")
        AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    return {"member": member_token, "admin": admin_token, "owner": owner_token, "owner_id": owner.pk}


def _events(api, tenant, token, query=""):
    response = api.get(f"/api/v1/audit-events{query}", host=tenant.host, token=token)
    assert response.status_code == 200, response.body
    return response.body


def test_admins_list_events_newest_first_with_every_field(api, tenant_a, trail):
    body = _events(api, tenant_a, trail["admin"])
    events = body["results"]
    assert body["count"] == len(events) == 6
    times = [e["created_at"] for e in events]
    assert times == sorted(times, reverse=True)
    assert events[-1]["type"] == "member.role_changed"
    for event in events:
        assert set(event) == {
            "id",
            "type",
            "actor",
            "target_user",
            "ip_address",
            "user_agent",
            "data",
            "created_at",
        }
    ghost = next(e for e in events if e["actor"] and e["actor"]["email"] == "ghost@example.com")
    assert ghost["type"] == "login.failed" and ghost["actor"]["id"] is None
    assert ghost["ip_address"] == "127.0.0.1" and ghost["data"] == {"method": "password"}
    succeeded = next(e for e in events if e["type"] == "login.succeeded")
    assert succeeded["actor"]["id"] is not None


def test_members_may_not_read_the_audit_trail(api, tenant_a, trail):
    response = api.get("/api/v1/audit-events", host=tenant_a.host, token=trail["member"])
    assert response.status_code == 403
    assert response.body["error"] == "permission_denied"
    assert api.get("/api/v1/audit-events", host=tenant_a.host).status_code == 401


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?type=login.failed", 2),
        ("?type=login", 5),
        ("?type=member.role_changed", 1),
        ("?actor=ghost@example.com", 1),
        ("?actor=MEMBER@example.com", 2),
    ],
)
def test_filters(api, tenant_a, trail, query, expected):
    assert _events(api, tenant_a, trail["owner"], query)["count"] == expected


def test_filter_by_actor_id_and_dates(api, tenant_a, trail):
    by_owner = _events(api, tenant_a, trail["owner"], f"?actor={trail['owner_id']}")["results"]
    assert {e["type"] for e in by_owner} == {"login.succeeded", "member.role_changed"}
    today = timezone.now().date()
    recent = _events(api, tenant_a, trail["owner"], f"?since={today - timedelta(days=1)}")
    assert recent["count"] == 5
    old = _events(api, tenant_a, trail["owner"], f"?until={today - timedelta(days=5)}")
    assert [e["type"] for e in old["results"]] == ["member.role_changed"]
    # A bare until date includes that whole day.
    assert _events(api, tenant_a, trail["owner"], f"?until={today}")["count"] == 6
    window = _events(
        api,
        tenant_a,
        trail["owner"],
        f"?since={today - timedelta(days=11)}&until={today - timedelta(days=9)}",
    )
    assert window["count"] == 1
    assert (
        _events(api, tenant_a, trail["owner"], "?since=2000-01-01T00:00:00Z&type=login.failed")["count"] == 2
    )


def test_pagination(api, tenant_a, trail):
    first = _events(api, tenant_a, trail["owner"], "?limit=4")
    assert len(first["results"]) == 4 and first["count"] == 6
    assert first["next"] == "/api/v1/audit-events?limit=4&offset=4"
    second = api.get(first["next"], host=tenant_a.host, token=trail["owner"]).body
    assert len(second["results"]) == 2 and second["next"] is None
    assert not {e["id"] for e in first["results"]} & {e["id"] for e in second["results"]}


@pytest.mark.parametrize(
    "query",
    [
        "?since=yesterday",
        "?until=2025-02-30",
        "?since=2025-13-01",
        "?type=nonsense",
        "?actor=not an email",
        "?limit=0",
        "?limit=1000",
        "?offset=-1",
        "?limit=abc",
        "?since=2025-02-01&until=2025-01-01",
    ],
)
def test_bad_filters_are_400(api, tenant_a, trail, query):
    response = api.get(f"/api/v1/audit-events{query}", host=tenant_a.host, token=trail["owner"])
    assert response.status_code == 400
    assert response.body["error"] == "invalid_filter"
    assert response.body["detail"]


# --- the audit log page ----------------------------------------------------------------------
def _browser(handle, email) -> Client:
    client = Client(HTTP_HOST=handle.host)
    assert client.post("/accounts/login/", {"login": email, "password": handle.password}).status_code == 302
    return client


def test_audit_log_page_for_admins_with_filters(tenant_a, trail):
    browser = _browser(tenant_a, "admin@example.com")
    page = browser.get("/audit/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "leanvibe.css" in html and "Audit log" in html
    assert "ghost@example.com" in html and "Role changed" in html
    filtered = browser.get("/audit/", {"type": "login.failed"}).content.decode()
    assert filtered.count('class="audit-event"') == 2 and "Role changed</span>" not in filtered
    by_actor = browser.get("/audit/", {"actor": "ghost@example.com"}).content.decode()
    assert by_actor.count('class="audit-event"') == 1
    bad = browser.get("/audit/", {"since": "yesterday"})
    assert bad.status_code == 400 and b"ISO 8601" in bad.content


def test_audit_log_page_is_for_admins_only(tenant_a, trail):
    assert _browser(tenant_a, "member@example.com").get("/audit/").status_code == 403
    anonymous = Client(HTTP_HOST=tenant_a.host).get("/audit/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_audit_log_page_pages(tenant_a, trail):
    browser = _browser(tenant_a, "admin@example.com")
    html = browser.get("/audit/", {"limit": "3"}).content.decode()
    assert html.count('class="audit-event"') == 3 and 'rel="next"' in html and 'rel="prev"' not in html
    last = browser.get("/audit/", {"limit": "3", "offset": "6"}).content.decode()
    assert 'rel="prev"' in last and 'rel="next"' not in last
