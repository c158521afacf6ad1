"""The admin console: public host, platform staff only, every write through the services."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context, schema_exists

from accounts.models import Role, User
from accounts.services import user_create
from tenants.models import PooledSchema, Tenant
from tenants.schemas import schema_clone_template, schema_fingerprint

CHANGELIST = "/admin/tenants/tenant/"


@pytest.fixture
def staff(db):
    return User.objects.create_superuser(email="staff@leanvibe.test", password="staff-pass-123")


@pytest.fixture
def staff_client(client, staff):
    # The console needs a verified second factor (django-otp): sign in with a real TOTP code.
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    response = client.post(
        "/admin/login/?next=/admin/",
        {
            "username": staff.email,
            "password": "staff-pass-123",
            "otp_token": totp(device.bin_key),
            "next": "/admin/",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    return client


def _rows(response) -> list[str]:
    return [tenant.organization_name for tenant in response.context["cl"].result_list]


def _user_count_cells(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<td class="field-user_count">(\d+)</td>', html)]


def test_changelist_lists_tenants_with_their_user_counts(staff_client, tenant_a, tenant_b):
    with schema_context(tenant_a.tenant.schema_name):
        user_create(email="member@acme.test", password=None, role=Role.MEMBER)
        user_create(email="gone@acme.test", password=None, role=Role.MEMBER)
        User.objects.filter(email="gone@acme.test").update(is_active=False)

    response = staff_client.get(CHANGELIST)

    assert response.status_code == 200
    # Ordered by name: Acme (owner + active member; the inactive one is not counted), Globex (owner).
    assert _rows(response) == ["Acme Corporation", "Globex Industries"]
    assert _user_count_cells(response.content.decode()) == [2, 1]
    html = response.content.decode()
    assert tenant_a.tenant.schema_name in html and "Starter" in html and "Active" in html


def test_user_counts_cost_one_query_whatever_the_number_of_tenants(staff_client, make_tenant):
    make_tenant("Alpha")
    make_tenant("Beta")
    staff_client.get(CHANGELIST)  # warm first-use caches (content types, url resolvers)
    with CaptureQueriesContext(connection) as two:
        assert staff_client.get(CHANGELIST).status_code == 200

    make_tenant("Gamma")
    make_tenant("Delta")
    make_tenant("Epsilon")
    with CaptureQueriesContext(connection) as five:
        response = staff_client.get(CHANGELIST)

    assert _user_count_cells(response.content.decode()) == [1, 1, 1, 1, 1]
    assert len(five) == len(two), [q["sql"] for q in five.captured_queries]
    counting = [q["sql"] for q in five.captured_queries if "accounts_user" in q["sql"]]
    # One UNION query over the page's schemas; the other accounts_user hit is the session's staff user.
    assert sum(" UNION ALL " in sql for sql in counting) == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("globex", ["Globex Industries"]),  # organisation name
        ("acme-corporation", ["Acme Corporation"]),  # subdomain
        ("billing@globex.test", ["Globex Industries"]),  # billing email
        ("nothing-like-this", []),
    ],
)
def test_search_by_name_subdomain_and_billing_email(staff_client, make_tenant, query, expected):
    make_tenant("Acme Corporation", email="owner@acme.test")
    globex = make_tenant("Globex Industries", email="owner@globex.test")
    Tenant.objects.filter(pk=globex.tenant.pk).update(billing_email="billing@globex.test")

    response = staff_client.get(CHANGELIST, {"q": query})

    assert response.status_code == 200
    assert _rows(response) == expected


def test_filters_by_plan_and_status(staff_client, make_tenant):
    make_tenant("Small Shop", plan="starter")
    make_tenant("Mid Corp", plan="professional")
    big = make_tenant("Big Enterprise", plan="enterprise")
    Tenant.objects.filter(pk=big.tenant.pk).update(status=Tenant.Status.SUSPENDED)

    assert _rows(staff_client.get(CHANGELIST, {"plan__exact": "professional"})) == ["Mid Corp"]
    assert _rows(staff_client.get(CHANGELIST, {"status__exact": "suspended"})) == ["Big Enterprise"]
    assert _rows(staff_client.get(CHANGELIST, {"status__exact": "active"})) == ["Mid Corp", "Small Shop"]
    assert _rows(staff_client.get(CHANGELIST, {"status__exact": "active", "plan__exact": "enterprise"})) == []


def test_suspend_and_resume_actions_change_status(staff_client, api, tenant_a, tenant_b):
    response = staff_client.post(
        CHANGELIST,
        {"action": "suspend_selected", "_selected_action": [tenant_a.id, tenant_b.id]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Suspended 2 organisation(s)." in response.content.decode()
    assert set(Tenant.objects.values_list("status", flat=True)) == {"suspended"}
    # The suspension is real: the tenant's API now refuses requests.
    blocked = api.post(
        "/api/v1/auth/login", {"email": tenant_a.owner_email, "password": "x"}, host=tenant_a.host
    )
    assert blocked.status_code == 403 and blocked.body["error"] == "tenant_suspended"

    response = staff_client.post(
        CHANGELIST, {"action": "resume_selected", "_selected_action": [tenant_a.id]}, follow=True
    )
    assert "Resumed 1 organisation(s)." in response.content.decode()
    assert Tenant.objects.get(pk=tenant_a.tenant.pk).status == "active"
    assert Tenant.objects.get(pk=tenant_b.tenant.pk).status == "suspended"
    tenant_a.login(api)


def test_change_page_keeps_schema_name_and_shows_domains_inline(staff_client, tenant_a):
    url = f"{CHANGELIST}{tenant_a.id}/change/"
    page = staff_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="schema_name"' not in html  # read-only
    assert 'name="status"' not in html  # changed by the actions only
    assert "acme-corporation.localhost" in html  # the Domain inline

    form = {
        "organization_name": "Acme Renamed",
        "schema_name": "hijacked",
        "plan": "professional",
        "billing_email": "billing@acme.test",
        "timezone": "UTC",
        "domains-TOTAL_FORMS": "1",
        "domains-INITIAL_FORMS": "1",
        "domains-MIN_NUM_FORMS": "0",
        "domains-MAX_NUM_FORMS": "1000",
        "domains-0-id": str(tenant_a.tenant.domains.get().pk),
        "domains-0-tenant": tenant_a.id,
        "domains-0-domain": "acme-corporation.localhost",
        "domains-0-is_primary": "on",
    }
    response = staff_client.post(url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""

    tenant = Tenant.objects.get(pk=tenant_a.tenant.pk)
    assert (tenant.organization_name, tenant.plan) == ("Acme Renamed", "professional")
    assert tenant.schema_name == "acme-corporation"
    assert not schema_exists("hijacked")


def test_add_provisions_the_organisation_with_a_generated_password(staff_client, api):
    page = staff_client.get(f"{CHANGELIST}add/")
    assert page.status_code == 200
    assert 'name="schema_name"' not in page.content.decode()

    response = staff_client.post(
        f"{CHANGELIST}add/",
        {
            "organization_name": "Initech",
            "billing_email": "billing@initech.test",
            "plan": "professional",
            "admin_email": "Owner@Initech.test",
            "admin_password": "",
        },
        follow=True,
    )

    assert response.status_code == 200
    tenant = Tenant.objects.get(organization_name="Initech")
    assert (tenant.schema_name, tenant.plan, tenant.primary_domain) == (
        "initech",
        "professional",
        "initech.localhost",
    )
    assert schema_exists("initech")
    note = next(str(m) for m in response.context["messages"] if "Generated password" in str(m))
    password = note.rsplit(": ", 1)[1]
    login = api.post(
        "/api/v1/auth/login", {"email": "owner@initech.test", "password": password}, host="initech.localhost"
    )
    assert login.status_code == 200, login.body
    with schema_context("initech"):
        from agents.models import Project

        assert list(Project.objects.values_list("name", flat=True)) == ["Welcome"]


def test_add_rejects_a_weak_owner_password_and_creates_nothing(staff_client):
    response = staff_client.post(
        f"{CHANGELIST}add/",
        {
            "organization_name": "Initech",
            "billing_email": "billing@initech.test",
            "plan": "starter",
            "admin_email": "owner@initech.test",
            "admin_password": "123",
        },
    )
    assert response.status_code == 200
    assert "admin_password" in response.context["adminform"].form.errors
    assert not Tenant.objects.exists()
    assert not schema_exists("initech")


def test_tenants_cannot_be_deleted_from_the_console(staff_client, tenant_a):
    response = staff_client.get(f"{CHANGELIST}{tenant_a.id}/delete/")
    assert response.status_code == 403
    assert Tenant.objects.filter(pk=tenant_a.tenant.pk).exists()


def test_anonymous_and_non_staff_are_sent_to_the_login_page(client, db):
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")

    plain = User.objects.create_user(email="plain@leanvibe.test", password="plain-pass-123")
    client.force_login(plain)
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_tenant_owner_cannot_sign_in_to_the_console(client, tenant_a):
    """The owner exists in the tenant's schema only; the console knows the public schema's users."""
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": tenant_a.owner_email, "password": tenant_a.password, "next": "/admin/"},
    )
    assert response.status_code == 200  # the form again, with an error
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_staff_sign_in_with_email_password_and_code(client, staff):
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    response = client.post(
        "/admin/login/?next=/admin/",
        {
            "username": "staff@leanvibe.test",
            "password": "staff-pass-123",
            "otp_token": totp(device.bin_key),
            "next": "/admin/",
        },
    )
    assert response.status_code == 302
    index = client.get("/admin/")
    assert index.status_code == 200
    assert "LeanVibe platform console" in index.content.decode()


def test_console_does_not_exist_on_a_tenant_host(staff_client, tenant_a):
    client = staff_client
    assert client.get("/admin/", HTTP_HOST=tenant_a.host).status_code == 404
    assert client.get(CHANGELIST, HTTP_HOST=tenant_a.host).status_code == 404


def test_console_offers_public_schema_models_only(staff_client):
    index = staff_client.get("/admin/").content.decode()
    assert "/admin/tenants/tenant/" in index and "/admin/accounts/user/" in index
    # Staff's own console authenticators live in the public schema.
    assert "/admin/otp_totp/totpdevice/" in index
    # Tenant-only apps (their tables exist only in tenant schemas) are not in the console.
    tenant_only = (
        "/admin/agents/project/",
        "/admin/mfa/authenticator/",
        "/admin/socialaccount/socialapp/",
        "/admin/otp_email/emaildevice/",
    )
    for path in tenant_only:
        assert path not in index
        assert staff_client.get(path).status_code == 404


def test_pooled_schemas_are_listed_read_only(staff_client):
    schema_clone_template("pool_admintest")
    PooledSchema.objects.create(
        schema_name="pool_admintest", template_fingerprint=schema_fingerprint("tenant_template")
    )
    PooledSchema.objects.create(schema_name="pool_outdated", template_fingerprint="0" * 32)

    response = staff_client.get("/admin/tenants/pooledschema/")
    assert response.status_code == 200
    current = {entry.schema_name: entry.current for entry in response.context["cl"].result_list}
    assert current == {"pool_admintest": True, "pool_outdated": False}
    assert staff_client.get("/admin/tenants/pooledschema/add/").status_code == 403
    entry = PooledSchema.objects.get(schema_name="pool_admintest")
    assert staff_client.get(f"/admin/tenants/pooledschema/{entry.pk}/delete/").status_code == 403
    detail = staff_client.post(f"/admin/tenants/pooledschema/{entry.pk}/change/", {"schema_name": "x"})
    assert detail.status_code == 403
    assert PooledSchema.objects.filter(schema_name="pool_admintest").exists()


def test_staff_accounts_are_created_with_email_login(staff_client, client):
    response = staff_client.post(
        "/admin/accounts/user/add/",
        {
            "email": "New.Staff@LeanVibe.test",
            "usable_password": "true",
            "password1": "a-long-staff-password",
            "password2": "a-long-staff-password",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    created = User.objects.get(email="new.staff@leanvibe.test")
    assert created.check_password("a-long-staff-password")
    assert not created.is_staff  # granted explicitly on the change page

    listing = staff_client.get("/admin/accounts/user/", {"q": "new.staff"})
    assert [u.email for u in listing.context["cl"].result_list] == ["new.staff@leanvibe.test"]
    # Staff accounts are deactivated, not deleted.
    assert staff_client.get(f"/admin/accounts/user/{created.pk}/delete/").status_code == 403


def test_staff_password_is_changed_through_the_console(staff_client, client, staff):
    response = staff_client.post(
        f"/admin/accounts/user/{staff.pk}/password/",
        {
            "usable_password": "true",
            "password1": "another-long-password",
            "password2": "another-long-password",
        },
    )
    assert response.status_code == 302
    staff.refresh_from_db()
    assert staff.check_password("another-long-password")
    assert client.login(email="staff@leanvibe.test", password="another-long-password")
