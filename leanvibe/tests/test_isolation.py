"""Tenant B, by host, by header and by token, can neither see nor touch tenant A's objects, and
learns nothing of their existence (404, not 403)."""

from __future__ import annotations

import contextlib

import pytest
from django.urls import Resolver404, get_resolver

from billing import tasks as billing_tasks
from billing.models import BillingAccount
from tenants.tests.test_token_tenant import forge_scope

# Every tenant-scoped API route and the test below that attacks it.
TENANT_SCOPED_ROUTES = {
    "api-projects": "test_list_and_create_never_cross_tenants",
    "api-project": "test_project_detail_of_another_tenant_is_404",
    "api-usage": "test_usage_is_per_tenant",
    "api-tasks": "test_tasks_never_cross_tenants",
    "api-task": "test_tasks_of_another_tenant_are_404",
    "api-task-status": "test_tasks_of_another_tenant_are_404",
    "api-task-code": "test_tasks_of_another_tenant_are_404",
    "api-task-download": "test_tasks_of_another_tenant_are_404",
    "api-task-cancel": "test_tasks_of_another_tenant_are_404",
    "api-task-events": "test_tasks_of_another_tenant_are_404",
    "api-ai-productivity": "test_tasks_never_cross_tenants",
    "api-billing-usage": "test_billing_usage_is_per_tenant",
    "api-billing-usage-analytics": "test_billing_usage_is_per_tenant",
    "api-tenant": "test_tenant_detail_of_another_tenant_is_404",
    "api-refresh": "test_refresh_token_of_another_tenant_is_401",
    "api-logout": "test_sessions_never_cross_tenants",
    "api-password": "test_password_change_never_crosses_tenants",
    "api-sessions": "test_sessions_never_cross_tenants",
    "api-session": "test_sessions_never_cross_tenants",
    "api-user-sessions": "test_ending_sessions_of_another_tenants_user_is_404",
    "api-audit-events": "test_audit_events_are_per_tenant",
    "api-exports": "test_data_exports_of_another_tenant_are_404",
    "api-journey": "test_the_journey_is_per_tenant",
    "api-export": "test_data_exports_of_another_tenant_are_404",
    "api-users": "test_users_of_another_tenant_are_404",
    "api-user": "test_users_of_another_tenant_are_404",
    "api-invitations": "test_invitations_of_another_tenant_are_404",
    "api-invitation": "test_invitations_of_another_tenant_are_404",
    "api-invitation-resend": "test_invitations_of_another_tenant_are_404",
    "api-sso-providers": "test_sso_providers_of_another_tenant_are_404",
    "api-sso-provider": "test_sso_providers_of_another_tenant_are_404",
    "api-sso-settings": "test_sso_providers_of_another_tenant_are_404",
    "api-sso-initiate": "test_sso_providers_of_another_tenant_are_404",
    "api-sso-callback": "test_sso_providers_of_another_tenant_are_404",
    "api-sso-link": "test_pending_sso_sign_ins_never_cross_tenants",
    "api-mfa": "test_mfa_and_security_settings_never_cross_tenants",
    "api-mfa-setup": "test_mfa_and_security_settings_never_cross_tenants",
    "api-mfa-verify": "test_mfa_and_security_settings_never_cross_tenants",
    "api-mfa-email": "test_mfa_and_security_settings_never_cross_tenants",
    "api-mfa-email-verify": "test_mfa_and_security_settings_never_cross_tenants",
    "api-security": "test_mfa_and_security_settings_never_cross_tenants",
    "api-billing-subscription": "test_billing_never_crosses_tenants",
    "api-billing-subscribe": "test_billing_never_crosses_tenants",
    "api-billing-subscription-change": "test_billing_never_crosses_tenants",
    "api-billing-subscription-cancel": "test_billing_never_crosses_tenants",
    "api-billing-subscription-resume": "test_billing_never_crosses_tenants",
    "api-billing-portal": "test_billing_never_crosses_tenants",
    "api-billing-invoices": "test_billing_never_crosses_tenants",
    "api-billing-invoices-upcoming": "test_billing_never_crosses_tenants",
}
# Platform routes: staff only on the public host (tested in tenants/tests/test_tenants_api.py).
PLATFORM_ROUTES = {
    "api-tenants",
    "api-tenant-suspend",
    "api-tenant-resume",
    "api-login",
    "api-billing-plans",
    "api-billing-revenue-analytics",  # staff only: billing/tests/test_revenue.py
}


def _routes_not_called(test_name: str, requested: set[str]) -> set[str]:
    """The routes ``test_name`` is the isolation test of and did not request."""
    return {route for route, test in TENANT_SCOPED_ROUTES.items() if test == test_name} - requested


@pytest.fixture
def api(api):
    """The shared JSON client, noting the route (URL name) of every request it makes."""
    call = api.call
    api.requested_routes = set()

    def recording_call(*args, **kwargs):
        response = call(*args, **kwargs)
        with contextlib.suppress(Resolver404):
            api.requested_routes.add(response.resolver_match.url_name)
        return response

    api.call = recording_call
    return api


@pytest.fixture(autouse=True)
def _each_test_calls_the_routes_it_covers(request, api):
    """A route's isolation test must really request that route (fixtures' requests not counted)."""
    yield
    missing = _routes_not_called(request.node.originalname, api.requested_routes)
    assert not missing, f"{request.node.originalname} never requests {sorted(missing)}"


def test_every_api_route_is_covered_by_an_isolation_test():
    resolver = get_resolver("leanvibe.api.urls")
    names = {name for name in resolver.reverse_dict if isinstance(name, str)}
    assert names == set(TENANT_SCOPED_ROUTES) | PLATFORM_ROUTES, "add the new route to an isolation test"
    for test_name in TENANT_SCOPED_ROUTES.values():
        assert callable(globals().get(test_name)), test_name
    # Each of those tests is checked, when it runs, to request its routes (the fixture above).
    assert _routes_not_called("test_usage_is_per_tenant", set()) == {"api-usage"}
    assert _routes_not_called("test_usage_is_per_tenant", {"api-usage", "api-login"}) == set()


@pytest.fixture
def world(api, tenant_a, tenant_b):
    token_a = tenant_a.login(api)
    token_b = tenant_b.login(api)
    secret = api.post(
        "/api/v1/projects",
        {"name": "Secret Plan", "description": "A only"},
        host=tenant_a.host,
        token=token_a,
    ).body
    # Each test is credited only with the requests it makes itself.
    api.requested_routes.clear()
    return {"a": tenant_a, "b": tenant_b, "token_a": token_a, "token_b": token_b, "secret": secret}


def _as_b(world):
    """Ways tenant B's user may call: B's context with B's token (must see only B). The last is
    the token alone on the public host, whose prefix names B."""
    b = world["b"]
    return [
        {"host": b.host, "token": world["token_b"]},
        {"tenant_header": b.id, "token": world["token_b"]},
        {"tenant_header": b.tenant.schema_name, "token": world["token_b"]},
        {"token": world["token_b"]},
    ]


def _b_token_in_a_context(world):
    """B's token presented in A's context: unknown there, so 401. The last is B's token with its
    prefix edited to name A, alone on the public host: served for A, where it is unknown."""
    a = world["a"]
    return [
        {"host": a.host, "token": world["token_b"]},
        {"tenant_header": a.id, "token": world["token_b"]},
        {"token": forge_scope(world["token_b"], a.tenant.id)},
    ]


def _assert_secret_intact(api, world):
    a = world["a"]
    fetched = api.get(f"/api/v1/projects/{world['secret']['id']}", host=a.host, token=world["token_a"])
    assert fetched.status_code == 200
    assert fetched.body == world["secret"]


@pytest.mark.django_db
def test_project_detail_of_another_tenant_is_404(api, world):
    path = f"/api/v1/projects/{world['secret']['id']}"
    for ctx in _as_b(world):
        assert api.get(path, **ctx).status_code == 404
        assert api.patch(path, {"name": "Stolen"}, **ctx).status_code == 404
        assert api.delete(path, **ctx).status_code == 404
        response = api.get(path, **ctx)
        assert response.body == {"error": "not_found", "detail": "Project not found."}
    for ctx in _b_token_in_a_context(world):
        assert api.get(path, **ctx).status_code == 401
        assert api.patch(path, {"name": "Stolen"}, **ctx).status_code == 401
        assert api.delete(path, **ctx).status_code == 401
    _assert_secret_intact(api, world)


@pytest.mark.django_db
def test_list_and_create_never_cross_tenants(api, world):
    for ctx in _as_b(world):
        names = [p["name"] for p in api.get("/api/v1/projects", **ctx).body["results"]]
        assert "Secret Plan" not in names
        # The same name is free in B: names are unique per tenant only.
    created = api.post("/api/v1/projects", {"name": "Secret Plan"}, **_as_b(world)[0])
    assert created.status_code == 201
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/projects", **ctx).status_code == 401
        assert api.post("/api/v1/projects", {"name": "Injected"}, **ctx).status_code == 401
    a_names = [
        p["name"]
        for p in api.get("/api/v1/projects", host=world["a"].host, token=world["token_a"]).body["results"]
    ]
    assert sorted(a_names) == ["Secret Plan", "Welcome"]
    _assert_secret_intact(api, world)


@pytest.mark.django_db
def test_usage_is_per_tenant(api, world):
    for ctx in _as_b(world):
        assert api.get("/api/v1/usage", **ctx).body["resources"]["projects"]["used"] == 1
    a_usage = api.get("/api/v1/usage", host=world["a"].host, token=world["token_a"]).body
    assert a_usage["resources"]["projects"]["used"] == 2
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/usage", **ctx).status_code == 401


@pytest.mark.django_db
def test_billing_usage_is_per_tenant(api, world):
    from billing.models import UsageRecord
    from tenants.usage import period_usage

    a, b = world["a"], world["b"]
    a_ctx = {"host": a.host, "token": world["token_a"]}
    first = {"metric_name": "ai_requests", "quantity": 9, "idempotency_key": "a-secret-job"}
    assert api.post("/api/v1/billing/usage", first, **a_ctx).status_code == 201
    b_total = 0
    for n, ctx in enumerate(_as_b(world)):
        analytics = api.get("/api/v1/billing/usage/analytics", **ctx)
        assert analytics.status_code == 200
        assert analytics.body["metrics"]["ai_requests"]["total_usage"] == b_total  # B's own only
        posted = api.post(
            "/api/v1/billing/usage", {**first, "quantity": 1, "idempotency_key": f"b{n}"}, **ctx
        )
        b_total += 1
        assert posted.status_code == 201 and posted.body["period_total"] == b_total
    # A's idempotency key means nothing in B: B's call records for B, and is not A's answer.
    replay = api.post("/api/v1/billing/usage", {**first, "quantity": 2}, host=b.host, token=world["token_b"])
    assert replay.status_code == 201
    assert replay.body["quantity"] == 2 and replay.body["period_total"] == b_total + 2
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/billing/usage/analytics", **ctx).status_code == 401
        assert api.post("/api/v1/billing/usage", {**first, "idempotency_key": "x"}, **ctx).status_code == 401
    assert period_usage(a.tenant, "ai_requests") == 9
    assert UsageRecord.objects.filter(tenant=a.tenant).count() == 1
    a_view = api.get("/api/v1/billing/usage/analytics", **a_ctx).body
    assert a_view["metrics"]["ai_requests"]["total_usage"] == 9


def _secret_task(api, world):
    a_ctx = {"host": world["a"].host, "token": world["token_a"]}
    task = api.post("/api/v1/tasks", {"title": "Secret task", "description": "A only"}, **a_ctx).body
    api.requested_routes.clear()
    return task, a_ctx


@pytest.mark.django_db
def test_tasks_of_another_tenant_are_404(api, world):
    task, a_ctx = _secret_task(api, world)
    base = f"/api/v1/tasks/{task['id']}"
    gets = [
        base,
        f"{base}/status",
        f"{base}/code",
        f"{base}/download",
        f"{base}/events",
        f"{base}/events?after=0",
    ]
    for ctx in _as_b(world):
        for path in gets:
            response = api.get(path, **ctx)
            assert response.status_code == 404, path
            assert response.body == {"error": "not_found", "detail": "Task not found."}
        sse = api.get(f"{base}/events", headers={"Accept": "text/event-stream", "Last-Event-ID": "0"}, **ctx)
        assert sse.status_code == 404
        assert api.post(f"{base}/cancel", **ctx).status_code == 404
    for ctx in _b_token_in_a_context(world):
        for path in gets:
            assert api.get(path, **ctx).status_code == 401
        assert api.post(f"{base}/cancel", **ctx).status_code == 401
    intact = api.get(base, **a_ctx)
    assert intact.body == task and intact.body["status"] == "queued"


@pytest.mark.django_db
def test_tasks_never_cross_tenants(api, world):
    task, a_ctx = _secret_task(api, world)
    for ctx in _as_b(world):
        assert api.get("/api/v1/tasks", **ctx).body["results"] == []
        assert api.get("/api/v1/analytics/ai-productivity", **ctx).body["total_tasks"] == 0
        # A's project is unknown in B.
        foreign = api.post(
            "/api/v1/tasks", {"title": "x", "description": "y", "project_id": world["secret"]["id"]}, **ctx
        )
        assert foreign.status_code == 404 and foreign.body["error"] == "project_not_found"
    created = api.post("/api/v1/tasks", {"title": "B's own", "description": "B"}, **_as_b(world)[0])
    assert created.status_code == 201
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/tasks", **ctx).status_code == 401
        assert api.post("/api/v1/tasks", {"title": "x", "description": "y"}, **ctx).status_code == 401
        assert api.get("/api/v1/analytics/ai-productivity", **ctx).status_code == 401
    assert [t["id"] for t in api.get("/api/v1/tasks", **a_ctx).body["results"]] == [task["id"]]
    assert api.get("/api/v1/analytics/ai-productivity", **a_ctx).body["total_tasks"] == 1


@pytest.mark.django_db
def test_tenant_detail_of_another_tenant_is_404(api, world):
    path = f"/api/v1/tenants/{world['a'].id}"
    for ctx in _as_b(world):
        assert api.get(path, **ctx).status_code == 404
    for ctx in _b_token_in_a_context(world):
        assert api.get(path, **ctx).status_code == 401


# --- tokens, sessions, audit (accounts/tests/test_tokens.py, test_sessions.py, test_audit.py) --
def _login_pair(api, handle):
    response = api.post(
        "/api/v1/auth/login", {"email": handle.owner_email, "password": handle.password}, host=handle.host
    )
    assert response.status_code == 200
    return response.body


@pytest.mark.django_db
def test_refresh_token_of_another_tenant_is_401(api, world):
    pair_a = _login_pair(api, world["a"])
    b = world["b"]
    for ctx in ({"host": b.host}, {"tenant_header": b.id}):
        response = api.post("/api/v1/auth/refresh", {"refresh_token": pair_a["refresh_token"]}, **ctx)
        assert response.status_code == 401
        assert response.body["error"] == "invalid_refresh_token"
    # Alone on the public host, A's refresh token with its prefix edited to name B is served
    # for B, where it is unknown.
    forged = forge_scope(pair_a["refresh_token"], b.tenant.id)
    response = api.post("/api/v1/auth/refresh", {"refresh_token": forged})
    assert response.status_code == 401 and response.body["error"] == "invalid_refresh_token"
    # Still unused in A: it works there, alone on the public host, once (again is reuse).
    assert api.post("/api/v1/auth/refresh", {"refresh_token": pair_a["refresh_token"]}).status_code == 200
    assert (
        api.post(
            "/api/v1/auth/refresh", {"refresh_token": pair_a["refresh_token"]}, host=world["a"].host
        ).status_code
        == 401
    )


@pytest.mark.django_db
def test_sessions_never_cross_tenants(api, world):
    a_sessions = api.get("/api/v1/auth/sessions", host=world["a"].host, token=world["token_a"]).body[
        "results"
    ]
    a_ids = {s["id"] for s in a_sessions}
    assert a_ids
    for ctx in _as_b(world):
        b_ids = {s["id"] for s in api.get("/api/v1/auth/sessions", **ctx).body["results"]}
        assert not b_ids & a_ids
        for session_id in a_ids:
            assert api.delete(f"/api/v1/auth/sessions/{session_id}", **ctx).status_code == 404
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/auth/sessions", **ctx).status_code == 401
        assert api.post("/api/v1/auth/logout", **ctx).status_code == 401
    # A's token survived every attempt.
    assert api.get("/api/v1/projects", host=world["a"].host, token=world["token_a"]).status_code == 200


@pytest.mark.django_db
def test_password_change_never_crosses_tenants(api, make_tenant):
    # The same person in two organisations: two accounts, two passwords.
    a = make_tenant("Alpha", email="same@example.com")
    b = make_tenant("Beta", email="same@example.com")
    token_a, token_b = a.login(api), b.login(api)
    change = {"current_password": b.password, "new_password": "a-fresh-passphrase-for-b-1"}
    for ctx in ({"host": a.host, "token": token_b}, {"tenant_header": a.id, "token": token_b}):
        assert api.post("/api/v1/auth/password", change, **ctx).status_code == 401
    assert api.post("/api/v1/auth/password", change, host=b.host, token=token_b).status_code == 204
    # A's account, password and tokens are untouched by B's change and its revocation.
    assert api.get("/api/v1/projects", host=a.host, token=token_a).status_code == 200
    assert a.login(api)


@pytest.mark.django_db
def test_ending_sessions_of_another_tenants_user_is_404(api, world):
    from django_tenants.utils import schema_context

    from accounts.models import User

    with schema_context(world["a"].tenant.schema_name):
        a_owner_id = User.objects.get(email=world["a"].owner_email).pk
    with schema_context(world["b"].tenant.schema_name):
        b_ids = set(User.objects.values_list("pk", flat=True))
    for ctx in _as_b(world):
        other = next(i for i in range(a_owner_id, a_owner_id + 100) if i not in b_ids)
        assert api.delete(f"/api/v1/users/{other}/sessions", **ctx).status_code == 404
    for ctx in _b_token_in_a_context(world):
        assert api.delete(f"/api/v1/users/{a_owner_id}/sessions", **ctx).status_code == 401
    assert api.get("/api/v1/projects", host=world["a"].host, token=world["token_a"]).status_code == 200


@pytest.mark.django_db
def test_audit_events_are_per_tenant(api, world):
    api.post("/api/v1/auth/login", {"email": "intruder@example.com", "password": "x"}, host=world["a"].host)
    a_events = api.get("/api/v1/audit-events", host=world["a"].host, token=world["token_a"]).body["results"]
    assert any((e["actor"] or {}).get("email") == "intruder@example.com" for e in a_events)
    a_ids = {e["id"] for e in a_events}
    for ctx in _as_b(world):
        b_events = api.get("/api/v1/audit-events", **ctx).body["results"]
        assert b_events
        assert not {e["id"] for e in b_events} & a_ids
        assert all((e["actor"] or {}).get("email") != "intruder@example.com" for e in b_events)
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/audit-events", **ctx).status_code == 401


def _step_done(body, step_id):
    return next(s["done"] for level in body["levels"] for s in level["steps"] if s["id"] == step_id)


@pytest.mark.django_db
def test_the_journey_is_per_tenant(api, world):
    a = world["a"]
    added = api.post(
        "/api/v1/users",
        {"email": "boss@example.com", "password": "a-long-enough-passphrase-42", "role": "admin"},
        host=a.host,
        token=world["token_a"],
    )
    assert added.status_code == 201, added.body
    assert _step_done(api.get("/api/v1/journey", host=a.host, token=world["token_a"]).body, "admin_delegated")
    for ctx in _as_b(world):
        assert not _step_done(api.get("/api/v1/journey", **ctx).body, "admin_delegated")
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/journey", **ctx).status_code == 401


@pytest.mark.django_db
def test_data_exports_of_another_tenant_are_404(api, world, settings, tmp_path):
    settings.EXPORTS_ROOT = tmp_path
    a = world["a"]
    export = api.post("/api/v1/exports", host=a.host, token=world["token_a"]).body
    assert export["status"] == "pending"
    for ctx in _as_b(world):
        assert api.get("/api/v1/exports", **ctx).body["results"] == []
        assert api.get(f"/api/v1/exports/{export['id']}", **ctx).status_code == 404
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/exports", **ctx).status_code == 401
        assert api.post("/api/v1/exports", **ctx).status_code == 401
        assert api.get(f"/api/v1/exports/{export['id']}", **ctx).status_code == 401
    listed = api.get("/api/v1/exports", host=a.host, token=world["token_a"]).body["results"]
    assert [e["id"] for e in listed] == [export["id"]]


@pytest.mark.django_db
def test_users_of_another_tenant_are_404(api, world):
    a = world["a"]
    created = api.post(
        "/api/v1/users",
        {"email": "a-only@example.com", "password": "a-long-enough-passphrase-42"},
        host=a.host,
        token=world["token_a"],
    ).body
    path = f"/api/v1/users/{created['id']}"  # ids repeat across schemas: this one is A's only
    for ctx in _as_b(world):
        emails = [u["email"] for u in api.get("/api/v1/users", **ctx).body["results"]]
        assert emails == [world["b"].owner_email]
        assert api.get(path, **ctx).status_code == 404
        assert api.patch(path, {"role": "admin"}, **ctx).status_code == 404
        assert api.delete(path, **ctx).status_code == 404
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/users", **ctx).status_code == 401
        assert (
            api.post("/api/v1/users", {"email": "x@example.com", "password": "x"}, **ctx).status_code == 401
        )
        assert api.patch(path, {"role": "admin"}, **ctx).status_code == 401
    fetched = api.get(path, host=a.host, token=world["token_a"]).body
    assert (fetched["role"], fetched["is_active"]) == ("member", True)


@pytest.mark.django_db
def test_invitations_of_another_tenant_are_404(api, world):
    a = world["a"]
    invitation = api.post(
        "/api/v1/invitations", {"email": "invitee@example.com"}, host=a.host, token=world["token_a"]
    ).body
    path = f"/api/v1/invitations/{invitation['id']}"
    for ctx in _as_b(world):
        assert api.get("/api/v1/invitations", **ctx).body["results"] == []
        assert api.get(path, **ctx).status_code == 404
        assert api.delete(path, **ctx).status_code == 404
        assert api.post(f"{path}/resend", **ctx).status_code == 404
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/invitations", **ctx).status_code == 401
        assert api.delete(path, **ctx).status_code == 401
        assert api.post(f"{path}/resend", **ctx).status_code == 401
    assert api.get(path, host=a.host, token=world["token_a"]).body["status"] == "pending"


@pytest.mark.django_db
def test_sso_providers_of_another_tenant_are_404(api, world):
    a = world["a"]
    provider = api.post(
        "/api/v1/auth/sso/providers",
        {
            "type": "oidc",
            "name": "A Okta",
            "server_url": "https://a.okta.test",
            "client_id": "a",
            "client_secret": "s",
        },
        host=a.host,
        token=world["token_a"],
    ).body
    path = f"/api/v1/auth/sso/providers/{provider['id']}"
    initiate = {"provider": provider["id"], "redirect_uri": "https://app.example/cb"}
    for ctx in _as_b(world):
        assert api.get("/api/v1/auth/sso/providers", **ctx).body == []
        assert api.get(path, **ctx).status_code == 404
        assert api.patch(path, {"name": "stolen"}, **ctx).status_code == 404
        assert api.delete(path, **ctx).status_code == 404
        assert api.get("/api/v1/auth/sso/settings", **ctx).body == {"sso_only": False, "trust_idp_mfa": False}
        ctx_public = {k: v for k, v in ctx.items() if k != "token"} or ctx  # token-only: B by it
        assert api.post("/api/v1/auth/sso/initiate", initiate, **ctx_public).status_code == 404
        assert (
            api.post("/api/v1/auth/sso/callback", {"code": "c", "state": "s" * 43}, **ctx_public).status_code
            == 400
        )
    for ctx in _b_token_in_a_context(world):
        assert api.get("/api/v1/auth/sso/providers", **ctx).status_code == 401
        assert api.delete(path, **ctx).status_code == 401
        assert api.patch("/api/v1/auth/sso/settings", {"sso_only": True}, **ctx).status_code == 401
    assert api.get(path, host=a.host, token=world["token_a"]).body["name"] == "A Okta"


@pytest.mark.django_db
def test_pending_sso_sign_ins_never_cross_tenants(api, world):
    """A link token minted by A's SSO sign-in (the IdP asserted A's owner) is unknown to B, by
    host and by header, even with the right password."""
    from accounts.tests.test_sso_oidc import acme_oidc_provider, add_oidc, api_sign_in

    a = world["a"]
    for idp in acme_oidc_provider():
        provider = add_oidc(api, a, idp)
        idp.user = {"sub": "a-owner", "email": a.owner_email, "email_verified": True}
        pending, _ = api_sign_in(api, a, provider["id"])
        assert pending.status_code == 409
        body = {"link_token": pending.body["link_token"], "password": a.password}
        for ctx in _as_b(world):
            ctx_public = {k: v for k, v in ctx.items() if k != "token"} or ctx  # token-only: B by it
            refused = api.post("/api/v1/auth/sso/link", body, **ctx_public)
            assert refused.status_code == 400 and refused.body["error"] == "sso_pending_invalid"
        assert api.post("/api/v1/auth/sso/link", body, host=a.host).status_code == 200


@pytest.mark.django_db
def test_mfa_and_security_settings_never_cross_tenants(api, world):
    from accounts.tests.mfa_helpers import enrol_totp, totp_code, wait_away_from_step_boundary

    a = world["a"]
    setup_a = enrol_totp(api, a.host, world["token_a"])
    for ctx in _as_b(world):
        assert api.get("/api/v1/auth/mfa", **ctx).body == {"enabled": False, "methods": []}
        assert api.get("/api/v1/auth/security", **ctx).body == {"require_mfa": False}
    calls = [
        ("GET", "/api/v1/auth/mfa", None),
        ("DELETE", "/api/v1/auth/mfa", {"code": setup_a["backup_codes"][0]}),
        ("POST", "/api/v1/auth/mfa/setup", None),
        ("POST", "/api/v1/auth/mfa/verify", {"code": "123456"}),
        ("POST", "/api/v1/auth/mfa/email", None),
        ("POST", "/api/v1/auth/mfa/email/verify", {"code": "123456"}),
        ("PATCH", "/api/v1/auth/security", {"require_mfa": True}),
    ]
    for ctx in _b_token_in_a_context(world):
        for method, path, data in calls:
            assert api.call(method, path, data, **ctx).status_code == 401, (method, path)

    # B's owner has the same user id as A's: B's switch and B's pending setup stay in B.
    b_ctx = _as_b(world)[0]
    assert api.patch("/api/v1/auth/security", {"require_mfa": True}, **b_ctx).status_code == 200
    assert api.get("/api/v1/projects", host=a.host, token=world["token_a"]).status_code == 200
    assert api.post("/api/v1/auth/mfa/setup", **b_ctx).status_code == 200
    wait_away_from_step_boundary()
    crossed = api.post("/api/v1/auth/mfa/verify", {"code": totp_code(setup_a["secret"])}, **b_ctx)
    assert crossed.status_code == 400
    assert api.get("/api/v1/auth/mfa", host=a.host, token=world["token_a"]).body["enabled"] is True


# --- billing (billing/tests/test_subscriptions.py), against the local Stripe ----------------------
@pytest.mark.django_db
def test_billing_never_crosses_tenants(api, world, stripe_local, catalog):
    a, b = world["a"], world["b"]
    for handle in (a, b):
        billing_tasks.customer_and_trial_create.apply(args=[handle.id]).get()
    ctx_a = {"host": a.host, "token": world["token_a"]}
    paid = api.post(
        "/api/v1/billing/subscribe", {"plan_id": "enterprise", "payment_method_id": "pm_card_visa"}, **ctx_a
    )
    assert paid.status_code == 201
    a_invoices = {i["id"] for i in api.get("/api/v1/billing/invoices", **ctx_a).body["results"]}
    assert a_invoices
    a_before = BillingAccount.objects.get(tenant=a.tenant)

    for ctx in _as_b(world):
        mine = api.get("/api/v1/billing/subscription", **ctx).body
        assert (mine["plan"], mine["status"], mine["payment_method"]) == ("starter", "trialing", None)
        b_invoices = {i["id"] for i in api.get("/api/v1/billing/invoices", **ctx).body["results"]}
        assert not b_invoices & a_invoices
        upcoming = api.get("/api/v1/billing/invoices/upcoming", **ctx)
        assert upcoming.status_code == 200
        assert all(line["amount"] != 499_000 for line in upcoming.body["lines"])
    ctx_b = _as_b(world)[0]
    assert api.post("/api/v1/billing/subscription/cancel", **ctx_b).body["cancel_at_period_end"] is True
    assert api.post("/api/v1/billing/subscription/resume", **ctx_b).status_code == 200
    assert (
        api.post("/api/v1/billing/subscription/change", {"plan_id": "professional"}, **ctx_b).status_code
        == 200
    )
    assert "url" in api.post("/api/v1/billing/portal", **ctx_b).body
    assert "checkout_url" in api.post("/api/v1/billing/subscribe", {"plan_id": "starter"}, **ctx_b).body

    routes = [
        ("GET", "/api/v1/billing/subscription", None),
        ("GET", "/api/v1/billing/invoices", None),
        ("GET", "/api/v1/billing/invoices/upcoming", None),
        ("POST", "/api/v1/billing/subscribe", {"plan_id": "starter", "payment_method_id": "pm_card_visa"}),
        ("POST", "/api/v1/billing/subscription/change", {"plan_id": "starter"}),
        ("POST", "/api/v1/billing/subscription/cancel", None),
        ("POST", "/api/v1/billing/subscription/resume", None),
        ("POST", "/api/v1/billing/portal", None),
    ]
    for ctx in _b_token_in_a_context(world):
        for method, path, data in routes:
            assert api.call(method, path, data, **ctx).status_code == 401, (path, ctx)
    a_after = BillingAccount.objects.get(tenant=a.tenant)
    assert (a_after.plan, a_after.status, a_after.cancel_at_period_end, a_after.stripe_subscription_id) == (
        "enterprise",
        "active",
        False,
        a_before.stripe_subscription_id,
    )
    assert BillingAccount.objects.get(tenant=b.tenant).plan == "professional"
