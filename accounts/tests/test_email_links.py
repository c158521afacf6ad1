"""Links in emails name the tenant's primary domain with SITE_SCHEME and SITE_PORT, never the
request's Host header: a request for ``<tenant>:31337`` must not mail a link to port 31337."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from accounts.tests.member_helpers import Org, last_accept_link

ODD_PORT = "31337"
LINK = re.compile(r"https?://[^\s]+")


@pytest.fixture(autouse=True)
def _site(settings: Any) -> None:
    settings.SITE_SCHEME = "http"
    settings.SITE_PORT = 8000


def _links(message: Any) -> list[str]:
    return LINK.findall(str(message.body))


def _signed_in(tenant: Any, host: str) -> Client:
    client = Client(HTTP_HOST=host)
    response = client.post("/accounts/login/", {"login": tenant.owner_email, "password": tenant.password})
    assert response.status_code == 302
    return client


@pytest.mark.django_db
def test_a_password_reset_requested_through_another_port_mails_the_canonical_link(tenant_a):
    client = Client(HTTP_HOST=f"{tenant_a.host}:{ODD_PORT}")
    response = client.post("/accounts/password/reset/", {"email": tenant_a.owner_email})
    assert response.status_code == 302
    [message] = mail.outbox
    links = [link for link in _links(message) if "/accounts/password/reset/key/" in link]
    assert links and all(link.startswith(f"http://{tenant_a.host}:8000/") for link in links), message.body
    assert ODD_PORT not in message.body and ODD_PORT not in message.subject
    # The link works on the tenant's site.
    path = links[0].split(":8000", 1)[1]
    follow = Client(HTTP_HOST=tenant_a.host).get(path)
    assert follow.status_code == 302 and "/accounts/password/reset/key/" in follow["Location"]


@pytest.mark.django_db
def test_an_email_confirmation_requested_through_another_port_mails_the_canonical_link(tenant_a):
    client = _signed_in(tenant_a, f"{tenant_a.host}:{ODD_PORT}")
    response = client.post("/accounts/email/", {"action_add": "", "email": "second@example.com"})
    assert response.status_code == 302
    [message] = [m for m in mail.outbox if m.to == ["second@example.com"]]
    links = [link for link in _links(message) if "/accounts/confirm-email/" in link]
    assert links and all(link.startswith(f"http://{tenant_a.host}:8000/") for link in links), message.body
    assert ODD_PORT not in message.body and ODD_PORT not in message.subject


@pytest.mark.django_db
def test_an_invitation_sent_through_another_port_or_the_public_host_links_the_tenant_site(
    api, tenant_a, django_capture_on_commit_callbacks
):
    org = Org(api, tenant_a)
    with django_capture_on_commit_callbacks(execute=True):
        sent = api.post(
            "/api/v1/invitations",
            {"email": "new@example.com"},
            host=f"{tenant_a.host}:{ODD_PORT}",
            token=org.owner_token,
        )
    assert sent.status_code == 201
    assert last_accept_link()[0] == f"http://{tenant_a.host}:8000"
    with django_capture_on_commit_callbacks(execute=True):
        resent = api.post(
            f"/api/v1/invitations/{sent.body['id']}/resend", tenant_header=tenant_a.id, token=org.owner_token
        )
    assert resent.status_code == 200
    assert last_accept_link()[0] == f"http://{tenant_a.host}:8000"


@pytest.mark.django_db
def test_the_sign_up_redirect_and_welcome_email_name_the_canonical_site(client, settings):
    settings.SITE_SCHEME, settings.SITE_PORT = "https", 443
    response = client.post(
        "/signup/",
        {
            "organization_name": "Canonical Ltd",
            "admin_email": "owner@canonical.test",
            "admin_password": "correct-horse-battery-staple",
            "plan": "starter",
        },
        HTTP_HOST=f"localhost:{ODD_PORT}",
    )
    assert response.status_code == 302
    assert response["Location"].startswith("https://canonical-ltd.localhost/accounts/login/?")
