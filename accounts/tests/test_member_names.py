"""Member names refuse CR, LF and other control characters (400 ``validation_error`` on the API,
an inline error on the invitation page); an identity provider's display name is stripped of them
instead (the IdP controls it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.services import user_create
from accounts.testing.oidc_provider import OidcTestProvider
from accounts.tests.member_helpers import PASSWORD, Org, last_accept_link
from accounts.tests.test_sso_oidc import acme_oidc_provider, add_oidc, api_sign_in
from leanvibe.tests.html import field_errors, page

HOSTILE = ["Eve\r\nBcc: all@evil.test", "Eve\nSmith", "Eve\tSmith", "Eve\x00", "Eve\u2029Smith"]


@pytest.fixture
def org(api, tenant_a):
    return Org(api, tenant_a)


@pytest.mark.django_db
@pytest.mark.parametrize("name", HOSTILE)
def test_adding_a_member_refuses_the_name(org, name):
    response = org.call(
        "POST", "/api/v1/users", {"email": "eve@example.com", "password": PASSWORD, "username": name}
    )
    assert response.status_code == 400 and response.body["error"] == "validation_error"
    assert "username" in response.body["fields"]
    assert org.users_count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("name", HOSTILE)
def test_renaming_a_member_refuses_the_name(org, name):
    member = org.add("eve@example.com")
    response = org.call("PATCH", f"/api/v1/users/{member['id']}", {"username": name})
    assert response.status_code == 400 and response.body["error"] == "validation_error"
    assert "username" in response.body["fields"]
    assert org.user("eve@example.com").username == ""


@pytest.mark.django_db
def test_the_services_refuse_the_name(org):
    with tenant_context(org.handle.tenant), pytest.raises(ValidationError) as caught:
        user_create(email="eve@example.com", password=None, username="Eve", full_name="Eve\r\nSmith")
    assert "full_name" in caught.value.message_dict


@pytest.mark.django_db
def test_the_invitation_page_shows_an_inline_error(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert org.call("POST", "/api/v1/invitations", {"email": "new@example.com"}).status_code == 201
    _, secret = last_accept_link()
    response = Client().post(
        f"/invitations/accept/{secret}/",
        {"username": "New\r\nOne", "password1": PASSWORD, "password2": PASSWORD},
        HTTP_HOST=org.host,
        HTTP_ACCEPT="text/html",
    )
    assert response.status_code == 400
    assert any("control characters" in e for e in field_errors(page(response), "username"))
    assert org.users_count() == 1


@pytest.fixture
def idp() -> Iterator[OidcTestProvider]:
    yield from acme_oidc_provider()


@pytest.mark.django_db
def test_an_sso_display_name_is_stripped_of_control_characters(api, tenant_a, idp):
    idp.user = {**idp.user, "name": "Ada\r\nBcc: all@evil.test\x00"}
    provider = add_oidc(api, tenant_a, idp)
    response, _ = api_sign_in(api, tenant_a, provider["id"])
    assert response.status_code == 200, response.body
    with tenant_context(tenant_a.tenant):
        assert User.objects.get(email="ada@acme.test").full_name == "Ada Bcc: all@evil.test"
