"""The third way to choose a tenant: a bearer token alone on the public host.

New tokens carry their tenant in a prefix (``lva_<tenant uuid hex>_<secret>``, ``lvr_…`` for
refresh tokens, ``public`` for platform staff). On the public host, an ``/api/`` request with no
``X-Tenant-ID`` is served for the tenant its token names; the token is still looked up in that
tenant's schema only, so a forged or foreign prefix finds nothing.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from accounts.models import AuthToken, User
from accounts.services import token_hash, tokens_issue
from tenants.services import tenant_suspend
from tenants.token_scope import PUBLIC_SCOPE, token_fits_connection, token_scope

pytestmark = pytest.mark.django_db

# GET /api/v1/projects on the public host with only a bearer token, queries in order:
#   1. SET search_path = "public"          the middleware starts every request on public
#   2. Tenant WHERE id = <prefix> LIMIT 1  the token's tenant, by primary key (as X-Tenant-ID)
#   3. SET search_path = "<tenant>", ...   django-tenants, once after set_tenant()
#   4. AuthToken JOIN User WHERE hash =    authentication: one query, in that tenant's schema
#   5. Project list                        the view's own query
TOKEN_ONLY_PROJECT_LIST_QUERIES = 5


def _login(api, handle, **ctx):
    ctx = ctx or {"host": handle.host}
    response = api.post(
        "/api/v1/auth/login", {"email": handle.owner_email, "password": handle.password}, **ctx
    )
    assert response.status_code == 200, response.body
    return response.body


def forge_scope(token: str, tenant_id: uuid.UUID) -> str:
    """``token`` with its prefix changed to name ``tenant_id`` (an attacker's edit)."""
    kind, _scope, secret = token.split("_", 2)
    return f"{kind}_{tenant_id.hex}_{secret}"


def _old_format_token(handle) -> str:
    """An access token as minted before the tenant prefix: ``lva_<secret>``."""
    secret = f"lva_{secrets.token_urlsafe(32)}"
    with schema_context(handle.tenant.schema_name):
        owner = User.objects.get(email=handle.owner_email)
        AuthToken.objects.create(
            user=owner,
            kind=AuthToken.Kind.ACCESS,
            token_hash=token_hash(secret),
            family=uuid.uuid4(),
            expires_at=timezone.now() + timedelta(hours=1),
        )
    return secret


@pytest.fixture
def staff_token():
    staff = User.objects.create_superuser(email="staff@leanvibe.test", password="staff-pass-123")
    return tokens_issue(user=staff)


def test_new_tokens_carry_their_tenant(api, tenant_a):
    pair = _login(api, tenant_a)
    assert pair["access_token"].startswith(f"lva_{tenant_a.tenant.id.hex}_")
    assert pair["refresh_token"].startswith(f"lvr_{tenant_a.tenant.id.hex}_")
    assert token_scope(pair["access_token"]) == tenant_a.tenant.id
    assert token_scope(pair["refresh_token"]) == tenant_a.tenant.id
    # Minted under schema_context (a schema switched by name) they carry it too.
    with schema_context(tenant_a.tenant.schema_name):
        owner = User.objects.get(email=tenant_a.owner_email)
        issued = tokens_issue(user=owner)
    assert token_scope(issued.access_token) == tenant_a.tenant.id


def test_staff_tokens_are_marked_public(staff_token):
    assert staff_token.access_token.startswith(f"lva_{PUBLIC_SCOPE}_")
    assert staff_token.refresh_token.startswith(f"lvr_{PUBLIC_SCOPE}_")
    assert token_scope(staff_token.access_token) == PUBLIC_SCOPE


def test_token_scope_reads_only_well_formed_prefixes():
    tenant_id = uuid.uuid4()
    assert token_scope(f"lva_{tenant_id.hex}_{'x' * 43}") == tenant_id
    assert token_scope(f"lva_{tenant_id.hex.upper()}_{'x' * 43}") is None
    assert token_scope(f"lvx_{tenant_id.hex}_{'x' * 43}") is None
    assert token_scope(f"lva_{tenant_id.hex}_") is None
    assert token_scope(f"lva_{secrets.token_urlsafe(32)}") is None  # the old format
    assert token_scope("lva_pg_catalog_" + "x" * 43) is None
    assert token_scope("") is None


def test_a_scoped_token_fits_only_its_own_schema_without_a_query(
    api, tenant_a, tenant_b, staff_token, django_assert_num_queries
):
    token_a, old = tenant_a.login(api), f"lva_{secrets.token_urlsafe(32)}"
    with django_assert_num_queries(0):
        assert token_fits_connection(staff_token.access_token) and not token_fits_connection(token_a)
        assert token_fits_connection(old)
        with tenant_context(tenant_a.tenant):  # as the middleware sets it
            assert token_fits_connection(token_a) and token_fits_connection(old)
            assert not token_fits_connection(staff_token.access_token)
        with tenant_context(tenant_b.tenant):
            assert not token_fits_connection(token_a)
        # A schema switched by name has no tenant id at hand: the lookup in it alone decides.
        with schema_context(tenant_b.tenant.schema_name):
            assert token_fits_connection(token_a)
            assert not token_fits_connection(staff_token.access_token)


def test_token_only_on_the_public_host_serves_the_tokens_tenant(api, tenant_a, tenant_b):
    token_a, token_b = tenant_a.login(api), tenant_b.login(api)
    api.post("/api/v1/projects", {"name": "A Secret"}, host=tenant_a.host, token=token_a)

    response = api.get("/api/v1/projects", token=token_a)  # public host, no X-Tenant-ID
    assert response.status_code == 200, response.body
    assert sorted(p["name"] for p in response.body["results"]) == ["A Secret", "Welcome"]

    response = api.get("/api/v1/projects", token=token_b)
    assert [p["name"] for p in response.body["results"]] == ["Welcome"]

    created = api.post("/api/v1/projects", {"name": "Via Token"}, token=token_a)
    assert created.status_code == 201
    names = [
        p["name"] for p in api.get("/api/v1/projects", host=tenant_a.host, token=token_a).body["results"]
    ]
    assert "Via Token" in names
    assert api.get("/api/v1/usage", token=token_b).body["resources"]["projects"]["used"] == 1


def test_token_only_query_count_is_pinned(
    api, tenant_a, django_assert_num_queries, django_capture_on_commit_callbacks
):
    token = tenant_a.login(api)
    # The tenant's first call with a token ticks its journey step once (tenants.journey); the
    # cache learns it when that commits.
    with django_capture_on_commit_callbacks(execute=True):
        assert api.get("/api/v1/projects", token=token).status_code == 200
    with django_assert_num_queries(TOKEN_ONLY_PROJECT_LIST_QUERIES):
        assert api.get("/api/v1/projects", token=token).status_code == 200

    with CaptureQueriesContext(connection) as captured:
        api.get("/api/v1/projects", token=token)
    sql = [q["sql"] for q in captured.captured_queries]
    assert len(sql) == TOKEN_ONLY_PROJECT_LIST_QUERIES, sql
    assert sql[0] == 'SET search_path = "public"'
    assert sql[1].startswith('SELECT "tenants_tenant"') and '"tenants_tenant"."id" = ' in sql[1]
    assert "LIMIT 1" in sql[1] and "tenants_domain" not in sql[1]
    assert sql[2] == f'SET search_path = "{tenant_a.tenant.schema_name}","public"'
    assert '"accounts_authtoken"' in sql[3] and '"accounts_user"' in sql[3]
    assert sql[4].startswith('SELECT "agents_project"')


def test_a_token_with_another_tenants_header_or_host_is_401(api, tenant_a, tenant_b):
    token_a = tenant_a.login(api)
    for ctx in (
        {"host": tenant_b.host},
        {"tenant_header": tenant_b.id},
        {"tenant_header": "globex-industries"},
    ):
        response = api.get("/api/v1/projects", token=token_a, **ctx)
        assert response.status_code == 401, ctx
        assert response.body["error"] == "authentication_failed"
    # A mismatched prefix is refused before any lookup of the token.
    with CaptureQueriesContext(connection) as captured:
        assert api.get("/api/v1/projects", token=token_a, host=tenant_b.host).status_code == 401
    assert not [q for q in captured.captured_queries if "accounts_authtoken" in q["sql"]]


def test_forged_prefixes_find_nothing(api, tenant_a, tenant_b):
    token_a = tenant_a.login(api)
    forged = forge_scope(token_a, tenant_b.tenant.id)  # B's id with A's secret
    for ctx in ({}, {"host": tenant_b.host}, {"tenant_header": tenant_b.id}, {"host": tenant_a.host}):
        assert api.get("/api/v1/projects", token=forged, **ctx).status_code == 401, ctx
    staff_forged = forge_scope(token_a, uuid.UUID(int=0)).replace(uuid.UUID(int=0).hex, PUBLIC_SCOPE)
    # The tenant list is public for POST, so a bad token there is anonymous: 403, not staff.
    assert api.get("/api/v1/tenants", token=staff_forged).status_code == 403
    assert api.post(f"/api/v1/tenants/{tenant_a.id}/suspend", token=staff_forged).status_code == 401
    assert api.get("/api/v1/projects", token=staff_forged, host=tenant_a.host).status_code == 401
    # A's real token is untouched by the attempts.
    assert api.get("/api/v1/projects", token=token_a).status_code == 200


def test_a_prefix_naming_no_tenant_is_404(api, tenant_a):
    forged = forge_scope(tenant_a.login(api), uuid.uuid4())
    response = api.get("/api/v1/projects", token=forged)
    assert response.status_code == 404
    assert response.body["error"] == "tenant_not_found"


def test_a_suspended_tenants_token_is_403(api, tenant_a):
    token = tenant_a.login(api)
    refresh = _login(api, tenant_a)["refresh_token"]
    tenant_suspend(tenant=tenant_a.tenant)
    response = api.get("/api/v1/projects", token=token)
    assert response.status_code == 403
    assert response.body["error"] == "tenant_suspended"
    response = api.post("/api/v1/auth/refresh", {"refresh_token": refresh})
    assert response.status_code == 403


def test_staff_tokens_on_the_public_host_stay_platform_staff(api, tenant_a, staff_token):
    response = api.get("/api/v1/tenants", token=staff_token.access_token)
    assert response.status_code == 200
    assert tenant_a.id in {t["id"] for t in response.body["results"]}
    # In a tenant's context a staff token is nobody.
    for ctx in ({"host": tenant_a.host}, {"tenant_header": tenant_a.id}):
        assert api.get("/api/v1/projects", token=staff_token.access_token, **ctx).status_code == 401
    # And a tenant's token on the public host is that tenant's member, never staff.
    assert api.get("/api/v1/tenants", token=tenant_a.login(api)).status_code == 403


def test_old_format_tokens_keep_working_with_a_host_or_header(api, tenant_a):
    old = _old_format_token(tenant_a)
    assert api.get("/api/v1/projects", token=old, host=tenant_a.host).status_code == 200
    assert api.get("/api/v1/projects", token=old, tenant_header=tenant_a.id).status_code == 200
    # Without either they name no tenant: looked up among platform staff, unknown there.
    assert api.get("/api/v1/projects", token=old).status_code == 401


def test_refresh_and_logout_work_token_only(api, tenant_a):
    pair = _login(api, tenant_a)
    refreshed = api.post("/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.body
    new_access = refreshed.body["access_token"]
    assert token_scope(new_access) == tenant_a.tenant.id
    assert token_scope(refreshed.body["refresh_token"]) == tenant_a.tenant.id
    assert api.get("/api/v1/projects", token=new_access).status_code == 200

    assert api.post("/api/v1/auth/logout", token=new_access).status_code == 204
    assert api.get("/api/v1/projects", token=new_access).status_code == 401
    # The family is revoked in A's schema: its refresh token is dead too.
    response = api.post("/api/v1/auth/refresh", {"refresh_token": refreshed.body["refresh_token"]})
    assert response.status_code == 401


def test_refresh_token_only_never_crosses_tenants(api, tenant_a, tenant_b):
    pair = _login(api, tenant_a)
    forged = forge_scope(pair["refresh_token"], tenant_b.tenant.id)
    response = api.post("/api/v1/auth/refresh", {"refresh_token": forged})
    assert response.status_code == 401 and response.body["error"] == "invalid_refresh_token"
    response = api.post(
        "/api/v1/auth/refresh", {"refresh_token": forge_scope(pair["refresh_token"], uuid.uuid4())}
    )
    assert response.status_code == 404 and response.body["error"] == "tenant_not_found"
    # Bodies the middleware cannot read are the view's to refuse, never a 500.
    for raw in (b"{", b"[]", b'{"refresh_token": 5}', b"\xff", b"[" * 4000, b"{" + b" " * 5000 + b"}"):
        assert api.post("/api/v1/auth/refresh", raw=raw).status_code in (400, 401)
    assert api.post("/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}).status_code == 200


def test_the_header_still_wins_over_the_token(api, tenant_a, tenant_b):
    token_a = tenant_a.login(api)
    assert api.get("/api/v1/projects", token=token_a, tenant_header="no-such-org").status_code == 404
    assert api.get("/api/v1/projects", token=token_a, tenant_header=tenant_a.id).status_code == 200
    # Outside /api/ the token chooses nothing: the public site answers.
    assert api.client.get("/", HTTP_AUTHORIZATION=f"Bearer {token_a}").status_code == 200
