"""A Content-Security-Policy on every page (django-csp): scripts and styles from our own origin
only, and no page carries an inline script, an ``on*=`` handler, a ``javascript:`` URL or an
inline style that such a policy would have to allow. Walks the pages of the public site, the
admin console and a tenant's site (signed out, signed in, during two-factor)."""

from __future__ import annotations

from typing import Any

import lxml.html
import pytest
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_email.models import EmailDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import User
from accounts.testing.saml_idp import SamlTestIdp
from accounts.tests.member_helpers import Org, last_accept_link
from accounts.tests.mfa_helpers import enrol_totp
from accounts.tests.test_sso_saml import add_saml

pytestmark = pytest.mark.django_db

HTML: dict[str, Any] = {"HTTP_ACCEPT": "text/html"}
DATA_SCRIPT_TYPES = {"application/json", "application/ld+json"}


def policy(response: Any) -> dict[str, list[str]]:
    header = response.get("Content-Security-Policy", "")
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


def inline_code(html: str) -> list[str]:
    """Everything in ``html`` that needs 'unsafe-inline' (or would be blocked without it)."""
    doc = lxml.html.fromstring(html)
    found = []
    for script in doc.iter("script"):
        kind = (script.get("type") or "text/javascript").split(";")[0].strip().lower()
        if not script.get("src") and kind not in DATA_SCRIPT_TYPES:
            found.append(f"inline <script>: {(script.text or '')[:60]!r}")
    found += [f"<style> element: {(s.text or '')[:60]!r}" for s in doc.iter("style")]
    for element in doc.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.attrib.items():
            if name.lower().startswith("on"):
                found.append(f"<{element.tag} {name}=...>")
            elif name.lower() == "style":
                found.append(f"<{element.tag} style={value!r}>")
            elif value.strip().lower().startswith("javascript:"):
                found.append(f"<{element.tag} {name}={value!r}>")
    return found


def check(response: Any, what: str, status: int = 200) -> None:
    assert response.status_code == status, (what, response.status_code, response.content[:300])
    directives = policy(response)
    assert directives.get("default-src") == ["'self'"], (what, directives)
    assert directives.get("script-src") == ["'self'"], (what, directives)
    assert directives.get("style-src") == ["'self'"], (what, directives)
    assert directives.get("object-src") == ["'none'"] and directives.get("frame-ancestors") == ["'none'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert inline_code(response.content.decode()) == [], what


def test_the_checker_finds_inline_code():
    html = (
        '<html><body onload="x()"><script>alert(1)</script><script src="/s.js"></script>'
        '<script type="application/json">{}</script><a href="javascript:x()">x</a>'
        '<div style="color:red"></div><style>p{}</style></body></html>'
    )
    assert len(inline_code(html)) == 5


def test_public_site_pages(client: Client, tenant_a):
    for path in ["/", "/signup/", "/signup/?plan=professional", "/no-such-page/"]:
        check(client.get(path, **HTML), path, 404 if "no-such" in path else 200)
    refused = client.post("/signup/", {"organization_name": ""}, **HTML)
    check(refused, "sign-up with errors", 400)
    check(client.get("/", HTTP_HOST="nobody.localhost", **HTML), "unknown tenant", 404)


def test_admin_console_pages(client: Client, tenant_a):
    check(client.get("/admin/login/", **HTML), "console sign-in")
    staff = User.objects.create_superuser(email="staff@leanvibe.test", password="staff-pass-123")
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    client.post(
        "/admin/login/?next=/admin/",
        {"username": staff.email, "password": "staff-pass-123", "otp_token": totp(device.bin_key)},
    )
    for path in [
        "/admin/",
        "/admin/tenants/tenant/",
        "/admin/tenants/tenant/add/",
        f"/admin/tenants/tenant/{tenant_a.id}/change/",
        "/admin/accounts/user/",
    ]:
        check(client.get(path, **HTML), path)


def test_tenant_pages_signed_out(client: Client, api, tenant_a, django_capture_on_commit_callbacks):
    host = tenant_a.host
    for path in ["/accounts/login/", "/accounts/password/reset/", "/sso/", "/invitations/accept/nope/"]:
        expected = 404 if "nope" in path else 200
        check(client.get(path, HTTP_HOST=host, **HTML), path, expected)
    wrong = client.post("/accounts/login/", {"login": tenant_a.owner_email, "password": "no"}, HTTP_HOST=host)
    check(wrong, "sign-in with an error")
    org = Org(api, tenant_a)
    with django_capture_on_commit_callbacks(execute=True):
        org.call("POST", "/api/v1/invitations", {"email": "new@example.com"})
    _, secret = last_accept_link()
    check(client.get(f"/invitations/accept/{secret}/", HTTP_HOST=host, **HTML), "invitation")


def test_tenant_pages_signed_in(client: Client, api, tenant_a):
    host = tenant_a.host
    with SamlTestIdp() as idp:
        add_saml(api, tenant_a, idp)
    signed = client.post(
        "/accounts/login/", {"login": tenant_a.owner_email, "password": tenant_a.password}, HTTP_HOST=host
    )
    assert signed.status_code == 302
    for path in [
        "/",
        "/members/",
        "/members/invitations/",
        "/account/sessions/",
        "/audit/",
        "/settings/sso/",
        "/sso/",
        "/accounts/2fa/",
        "/accounts/email/",
        "/accounts/password/change/",
        "/accounts/sessions/",
        "/accounts/logout/",
        "/accounts/reauthenticate/",
        "/no-such-page/",
    ]:
        check(client.get(path, HTTP_HOST=host, **HTML), path, 404 if "no-such" in path else 200)
    reauth = client.get("/accounts/2fa/totp/activate/", HTTP_HOST=host)
    client.post(reauth["Location"], {"password": tenant_a.password}, HTTP_HOST=host)
    check(client.get("/accounts/2fa/totp/activate/", HTTP_HOST=host, **HTML), "two-factor enrolment")


def test_two_factor_pages(client: Client, api, tenant_a):
    host = tenant_a.host
    enrol_totp(api, host, tenant_a.login(api))
    with schema_context(tenant_a.tenant.schema_name):
        EmailDevice.objects.create(user=User.objects.get(), name="email", confirmed=True)
    client.post(
        "/accounts/login/", {"login": tenant_a.owner_email, "password": tenant_a.password}, HTTP_HOST=host
    )
    check(client.get("/accounts/2fa/authenticate/", HTTP_HOST=host, **HTML), "two-factor challenge")
    chosen = client.post("/accounts/2fa/email/", {"action": "send"}, HTTP_HOST=host)
    assert chosen.status_code in (200, 302)
    check(client.get("/accounts/2fa/email/", HTTP_HOST=host, **HTML), "email code")
    wrong = client.post("/accounts/2fa/email/", {"code": "not-it"}, HTTP_HOST=host, **HTML)
    check(wrong, "email code refused", wrong.status_code)
