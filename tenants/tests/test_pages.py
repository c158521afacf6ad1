"""The public site's pages (landing, sign-up) and the tenant sign-in page, through Django's client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client, RequestFactory
from django_tenants.utils import schema_context

from conftest import TenantHandle
from leanvibe.tests.html import field_errors, form_errors, input_value, messages, page, text_of, texts
from tenants.api.views import SignupRateThrottle
from tenants.models import Tenant
from tenants.services import tenant_suspend

HTML: dict[str, Any] = {"HTTP_ACCEPT": "text/html"}
PASSWORD = "orbital-mechanics-42"


def signup_data(**overrides: str) -> dict[str, str]:
    data = {
        "organization_name": "Initech",
        "admin_email": "Peter@Initech.example",
        "admin_password": PASSWORD,
        "billing_email": "",
        "plan": "starter",
    }
    data.update(overrides)
    return data


@pytest.fixture(autouse=True)
def _site_port(settings: Any) -> None:
    settings.SITE_PORT = 8000
    settings.SITE_SCHEME = "http"


# --- landing ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_landing_shows_every_plan_with_its_limits(client: Client) -> None:
    response = client.get("/", **HTML)

    assert response.status_code == 200
    doc = page(response)
    plans = {el.get("data-plan"): text_of(el) for el in doc.xpath("//article[@data-plan]")}
    assert set(plans) == {"starter", "professional", "enterprise"}
    assert "5 projects" in plans["starter"]
    assert "3 users" in plans["starter"]
    assert "10,000 API calls a month" in plans["starter"]
    assert "1 GB storage" in plans["starter"]
    assert "50 projects" in plans["professional"]
    assert "100,000 API calls a month" in plans["professional"]
    assert "10 GB storage" in plans["professional"]
    assert "Unlimited projects" in plans["enterprise"]
    assert "Unlimited storage" in plans["enterprise"]
    assert doc.xpath('//a[@href="/signup/"]'), "the call to action links to the sign-up page"
    assert doc.xpath('//a[@href="/signup/?plan=professional"]')


@pytest.mark.django_db
def test_pages_use_the_local_stylesheet_only(client: Client) -> None:
    doc = page(client.get("/", **HTML))

    sheets = [link.get("href") for link in doc.xpath('//link[@rel="stylesheet"]')]
    assert sheets == ["/static/leanvibe.css"]
    assert not doc.xpath("//script[@src]")
    css = client.get("/static/leanvibe.css")
    assert css.status_code == 200
    assert b".meter-fill" in b"".join(css.streaming_content)  # type: ignore[attr-defined]


# --- sign-up ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_signup_form_preselects_the_plan_from_the_link(client: Client) -> None:
    doc = page(client.get("/signup/?plan=professional", **HTML))

    checked = doc.xpath('//input[@name="plan"][@checked]')
    assert [el.get("value") for el in checked] == ["professional"]
    assert {el.get("value") for el in doc.xpath('//input[@name="plan"]')} == {
        "starter",
        "professional",
        "enterprise",
    }


@pytest.mark.django_db
def test_signup_creates_the_organisation_and_sends_the_owner_to_sign_in(client: Client) -> None:
    response = client.post("/signup/", signup_data(plan="professional"), **HTML)

    assert response.status_code == 302
    assert response["Location"] == (
        "http://initech.localhost:8000/accounts/login/?email=peter%40initech.example"
    )
    tenant = Tenant.objects.get(schema_name="initech")
    assert tenant.organization_name == "Initech"
    assert tenant.plan == "professional"
    # The billing email defaults to the owner's address, in its canonical form.
    assert tenant.billing_email == "peter@initech.example"
    assert tenant.primary_domain == "initech.localhost"
    from accounts.models import User

    with schema_context("initech"):
        owner = User.objects.get()
        assert owner.email == "peter@initech.example"
        assert owner.role == "owner"
        assert owner.check_password(PASSWORD)


@pytest.mark.django_db
def test_signup_with_a_taken_name_gets_the_next_free_address(client: Client) -> None:
    client.post("/signup/", signup_data(), **HTML)
    response = client.post("/signup/", signup_data(admin_email="bill@initech.example"), **HTML)

    assert response.status_code == 302
    assert urlsplit(response["Location"]).hostname == "initech-1.localhost"
    assert Tenant.objects.filter(organization_name="Initech").count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"organization_name": ""}, "organization_name", "This field is required."),
        ({"organization_name": "!!!"}, "organization_name", "Enter your organisation's name."),
        ({"admin_email": "not-an-email"}, "admin_email", "Enter a valid email address."),
        ({"admin_password": "short"}, "admin_password", "This password is too short."),
        ({"admin_password": "password123"}, "admin_password", "This password is too common."),
        ({"billing_email": "billing@"}, "billing_email", "Enter a valid email address."),
        ({"plan": "platinum"}, "plan", "Select a valid choice."),
    ],
)
def test_signup_errors_are_shown_next_to_their_field(
    client: Client, overrides: dict[str, str], field: str, message: str
) -> None:
    response = client.post("/signup/", signup_data(**overrides), **HTML)

    assert response.status_code == 400
    doc = page(response)
    errors = field_errors(doc, field)
    assert any(e.startswith(message) for e in errors), errors
    # Only the field at fault is marked, and what the user typed is kept.
    assert len(doc.xpath('//*[contains(@class, "has-error")]')) == 1
    if field != "organization_name":
        assert input_value(doc, "organization_name") == "Initech"
    assert input_value(doc, "admin_password") is None or input_value(doc, "admin_password") == ""
    assert not Tenant.objects.exists()


@pytest.mark.django_db
def test_signup_page_shares_the_per_address_limit_of_the_api(client: Client) -> None:
    factory = RequestFactory()
    throttle = SignupRateThrottle()
    # Use up the address's budget the way earlier sign-ups would have.
    request = factory.post("/api/v1/tenants", REMOTE_ADDR="127.0.0.1")
    request.user = AnonymousUser()
    while throttle.allow_request(request, None):  # type: ignore[arg-type]
        pass

    response = client.post("/signup/", signup_data(), REMOTE_ADDR="127.0.0.1", **HTML)

    assert response.status_code == 429
    assert any("Too many organisations" in e for e in form_errors(page(response)))
    assert not Tenant.objects.exists()


# --- tenant sign-in --------------------------------------------------------------------------


@pytest.mark.django_db
def test_sign_in_page_prefills_the_email_from_the_link(client: Client, tenant_a: TenantHandle) -> None:
    response = client.get("/accounts/login/?email=owner1@example.com", HTTP_HOST=tenant_a.host, **HTML)

    assert response.status_code == 200
    doc = page(response)
    assert input_value(doc, "login") == "owner1@example.com"
    assert doc.xpath('//input[@name="password"][@autofocus]'), "the password is next to type"
    assert "Sign in to Acme Corporation" in texts(doc, "//h1")
    # Our layout and stylesheet, not allauth's bare page.
    assert doc.xpath('//header[@class="topbar"]')
    assert "Acme Corporation" in texts(doc, '//*[@class="org"]')


@pytest.mark.django_db
def test_sign_in_page_escapes_the_prefilled_email(client: Client, tenant_a: TenantHandle) -> None:
    response = client.get(
        '/accounts/login/?email="><script>alert(1)</script>', HTTP_HOST=tenant_a.host, **HTML
    )

    assert b"<script>alert(1)</script>" not in response.content
    assert input_value(page(response), "login") == '"><script>alert(1)</script>'


@pytest.mark.django_db
def test_signing_in_with_the_form_opens_the_dashboard(client: Client, tenant_a: TenantHandle) -> None:
    response = client.post(
        "/accounts/login/",
        {"login": tenant_a.owner_email, "password": tenant_a.password},
        HTTP_HOST=tenant_a.host,
        **HTML,
    )
    assert response.status_code == 302
    assert response["Location"] == "/"

    dashboard = client.get("/", HTTP_HOST=tenant_a.host, **HTML)
    assert dashboard.status_code == 200
    assert "Welcome" in texts(page(dashboard), '//*[@class="project-name"]')


@pytest.mark.django_db
def test_wrong_password_is_refused_on_the_page(client: Client, tenant_a: TenantHandle) -> None:
    response = client.post(
        "/accounts/login/",
        {"login": tenant_a.owner_email, "password": "not-the-password"},
        HTTP_HOST=tenant_a.host,
        **HTML,
    )

    assert response.status_code == 200
    doc = page(response)
    assert any("not correct" in e for e in form_errors(doc))
    assert input_value(doc, "login") == tenant_a.owner_email
    assert client.get("/", HTTP_HOST=tenant_a.host, **HTML).status_code == 302


@pytest.mark.django_db
def test_owner_of_one_organisation_cannot_sign_in_to_another(
    client: Client, tenant_a: TenantHandle, tenant_b: TenantHandle
) -> None:
    response = client.post(
        "/accounts/login/",
        {"login": tenant_a.owner_email, "password": tenant_a.password},
        HTTP_HOST=tenant_b.host,
        **HTML,
    )

    assert response.status_code == 200
    assert any("not correct" in e for e in form_errors(page(response)))


@pytest.mark.django_db
def test_sign_out_page_uses_our_layout_and_signs_out(client: Client, tenant_a: TenantHandle) -> None:
    client.post(
        "/accounts/login/",
        {"login": tenant_a.owner_email, "password": tenant_a.password},
        HTTP_HOST=tenant_a.host,
    )
    confirm = client.get("/accounts/logout/", HTTP_HOST=tenant_a.host, **HTML)
    assert confirm.status_code == 200
    assert "Sign out" in texts(page(confirm), "//h1")

    response = client.post("/accounts/logout/", HTTP_HOST=tenant_a.host, **HTML)
    assert response.status_code == 302
    assert client.get("/", HTTP_HOST=tenant_a.host, **HTML)["Location"].startswith("/accounts/login/")


# --- state pages -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_unknown_organisation_gets_a_page_pointing_to_sign_up(client: Client) -> None:
    response = client.get("/", HTTP_HOST="nobody-here.localhost", **HTML)

    assert response.status_code == 404
    doc = page(response)
    assert "Organisation not found" in texts(doc, "//h1")
    assert doc.xpath('//a[@href="http://localhost:8000/signup/"]')


@pytest.mark.django_db
def test_suspended_organisation_gets_a_page_saying_so(
    client: Client, make_tenant: Callable[..., TenantHandle]
) -> None:
    handle = make_tenant("Umbrella")
    tenant_suspend(tenant=handle.tenant)

    response = client.get("/", HTTP_HOST=handle.host, **HTML)

    assert response.status_code == 403
    assert "Umbrella is suspended" in texts(page(response), "//h1")


@pytest.mark.django_db
def test_unknown_page_gets_the_styled_not_found_page(client: Client, tenant_a: TenantHandle) -> None:
    for host in ("localhost", tenant_a.host):
        response = client.get("/no/such/page/", HTTP_HOST=host, **HTML)
        assert response.status_code == 404
        doc = page(response)
        assert "Page not found" in texts(doc, "//h1")
        assert doc.xpath('//link[@href="/static/leanvibe.css"]')


@pytest.mark.django_db
def test_messages_helper_reads_flash_messages(client: Client, tenant_a: TenantHandle) -> None:
    """Signing in shows allauth's confirmation in our message area."""
    response = client.post(
        "/accounts/login/",
        {"login": tenant_a.owner_email, "password": tenant_a.password},
        HTTP_HOST=tenant_a.host,
        follow=True,
        **HTML,
    )

    assert any(tenant_a.owner_email in m for m in messages(page(response)))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "signed_in"),
    [
        ("/accounts/password/reset/", False),
        ("/accounts/password/change/", True),
        ("/accounts/2fa/", True),
        ("/accounts/sessions/", True),
    ],
)
def test_allauth_pages_render_inside_our_layout(
    client: Client, tenant_a: TenantHandle, path: str, signed_in: bool
) -> None:
    if signed_in:
        client.post(
            "/accounts/login/",
            {"login": tenant_a.owner_email, "password": tenant_a.password},
            HTTP_HOST=tenant_a.host,
        )

    response = client.get(path, HTTP_HOST=tenant_a.host, **HTML)

    assert response.status_code == 200
    doc = page(response)
    assert doc.xpath('//header[@class="topbar"]')
    assert doc.xpath('//section[contains(@class, "auth")]//h1')
    assert doc.xpath('//link[@href="/static/leanvibe.css"]')
    title = texts(doc, "//title")[0]
    assert title.endswith("· Acme Corporation"), title
    if signed_in:
        assert tenant_a.owner_email in texts(doc, '//*[@class="nav-user"]')
