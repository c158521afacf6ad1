"""SAML 2.0 sign-in through allauth's SAML views against a real IdP the tests start
(accounts.testing.saml_idp), which signs its assertions with a key made at start. Hostile
responses are each refused with an error page, and nothing is created."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from allauth.socialaccount.models import SocialAccount
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.models import AuditEvent, Role, User
from accounts.testing.saml_idp import SamlTestIdp
from tenants.links import tenant_url


@pytest.fixture
def idp() -> Iterator[SamlTestIdp]:
    with SamlTestIdp() as server:
        server.user = {
            "name_id": "ada@acme.test",
            "attributes": {"email": ["ada@acme.test"], "name": ["Ada Lovelace"], "role": ["admins"]},
        }
        yield server


def add_saml(api: Any, tenant: Any, idp: SamlTestIdp, **extra: Any) -> dict[str, Any]:
    token = tenant.login(api)
    response = api.post(
        "/api/v1/auth/sso/providers",
        {"type": "saml", "name": "Acme IdP", "metadata_xml": idp.metadata_xml(), **extra},
        host=tenant.host,
        token=token,
    )
    assert response.status_code == 201, response.body
    return dict(response.body)


def browser(tenant: Any) -> Client:
    return Client(HTTP_HOST=tenant.host)


def start(client: Client, provider: dict[str, Any]) -> str:
    """Begin an SP-initiated sign-in; return the IdP URL (with the AuthnRequest)."""
    response = client.post(urlparse(provider["login_url"]).path)
    assert response.status_code == 302, response.content[:500]
    return str(response["Location"])


def post_to_acs(client: Client, acs_url: str, saml_response: str, relay: str = "") -> Any:
    acs = client.post(urlparse(acs_url).path, {"SAMLResponse": saml_response, "RelayState": relay})
    assert acs.status_code == 302
    return client.get(acs["Location"])


def sign_in_via_idp(client: Client, provider: dict[str, Any]) -> Any:
    page = requests.get(start(client, provider), timeout=10)
    assert page.status_code == 200
    action = unescape(re.search(r'action="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    saml_response = unescape(re.search(r'name="SAMLResponse" value="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    return post_to_acs(client, action, saml_response)


def authn_request(client: Client, idp: SamlTestIdp, provider: dict[str, Any]) -> dict[str, str]:
    query = parse_qs(urlparse(start(client, provider)).query)
    return idp.parse_authn_request(query["SAMLRequest"][0])


def respond(idp: SamlTestIdp, request: dict[str, str], **kwargs: Any) -> str:
    options: dict[str, Any] = {
        "acs_url": request["acs_url"],
        "audience": request["sp_entity_id"],
        "in_response_to": request["id"],
    }
    options.update(kwargs)
    return idp.build_response(**options)


def signed_in_as(client: Client) -> str | None:
    response = client.get("/")
    if response.status_code != 200:
        return None
    match = re.search(r'title="Signed in as ([^"]+)"', response.content.decode())
    return match.group(1) if match else None


def assert_refused(response: Any, code: str | None = None) -> None:
    assert response.status_code in (400, 403), response.status_code
    body = response.content.decode()
    assert 'id="sso-error"' in body, body[:2000]
    if code:
        assert f'data-code="{code}"' in body, body[:2000]


def counts(tenant: Any) -> tuple[int, int]:
    with tenant_context(tenant.tenant):
        return User.objects.count(), SocialAccount.objects.count()


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_sp_metadata_and_acs_urls_are_served(api, tenant_a, idp):
    provider = add_saml(api, tenant_a, idp)
    assert provider["acs_url"] == tenant_url(tenant_a.tenant, f"/accounts/saml/{provider['id']}/acs/")
    assert provider["sp_metadata_url"] == tenant_url(
        tenant_a.tenant, f"/accounts/saml/{provider['id']}/metadata/"
    )
    assert provider["idp_entity_id"] == idp.entity_id and provider["idp_sso_url"] == idp.sso_url
    metadata = browser(tenant_a).get(urlparse(provider["sp_metadata_url"]).path)
    assert metadata.status_code == 200
    assert provider["acs_url"] in metadata.content.decode()
    assert 'WantAssertionsSigned="true"' in metadata.content.decode()


@pytest.mark.django_db
def test_metadata_url_is_fetched(api, tenant_a, idp):
    token = tenant_a.login(api)
    response = api.post(
        "/api/v1/auth/sso/providers",
        {"type": "saml", "name": "By URL", "metadata_url": f"{idp.base_url}/metadata"},
        host=tenant_a.host,
        token=token,
    )
    assert response.status_code == 201 and response.body["idp_entity_id"] == idp.entity_id


# --- sign-in ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sp_initiated_sign_in_creates_a_member_just_in_time(api, tenant_a, idp):
    provider = add_saml(api, tenant_a, idp, role_mapping={"admins": "admin"}, allowed_domains=["acme.test"])
    client = browser(tenant_a)
    final = sign_in_via_idp(client, provider)
    assert final.status_code == 302, final.content[:2000]
    assert signed_in_as(client) == "ada@acme.test"
    with tenant_context(tenant_a.tenant):
        user = User.objects.get(email="ada@acme.test")
        assert (user.full_name, user.role) == ("Ada Lovelace", Role.ADMIN)
        assert SocialAccount.objects.get(user=user).provider == provider["id"]
    # A second sign-in uses the same member.
    again = browser(tenant_a)
    assert sign_in_via_idp(again, provider).status_code == 302
    assert signed_in_as(again) == "ada@acme.test"
    assert counts(tenant_a) == (2, 1)


@pytest.mark.django_db
def test_existing_member_is_sent_to_the_link_page_not_signed_in(api, tenant_a, idp):
    provider = add_saml(api, tenant_a, idp)
    idp.user = {"name_id": tenant_a.owner_email, "attributes": {"email": [tenant_a.owner_email]}}
    client = browser(tenant_a)
    landed = sign_in_via_idp(client, provider)
    assert landed.status_code == 302 and landed["Location"] == "/sso/link/"
    assert signed_in_as(client) is None
    assert counts(tenant_a) == (1, 0)


# --- attacks ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unsigned_assertion_is_refused(api, tenant_a, idp):
    provider = add_saml(api, tenant_a, idp)
    client = browser(tenant_a)
    request = authn_request(client, idp, provider)
    response = post_to_acs(client, request["acs_url"], idp.encode(respond(idp, request, sign=False)))
    assert_refused(response, "saml_invalid")
    assert counts(tenant_a) == (1, 0) and signed_in_as(client) is None


@pytest.mark.django_db
def test_assertion_signed_by_another_key_is_refused(api, tenant_a, idp):
    provider = add_saml(api, tenant_a, idp)
    client = browser(tenant_a)
    request = authn_request(client, idp, provider)
    other_key = SamlTestIdp().key_pem
    response = post_to_acs(client, request["acs_url"], idp.encode(respond(idp, request, key_pem=other_key)))
    assert_refused(response, "saml_invalid")
    assert counts(tenant_a) == (1, 0)


@pytest.mark.django_db
def test_tampered_assertion_is_refused(api, tenant_a, idp):
    provider = add_saml(api, tenant_a, idp)
    client = browser(tenant_a)
    request = authn_request(client, idp, provider)
    signed = respond(idp, request, name_id="mallory@acme.test", attributes={"email": ["mallory@acme.test"]})
    tampered = signed.replace("mallory@acme.test", tenant_a.owner_email)
    assert tampered != signed
    response = post_to_acs(client, request["acs_url"], idp.encode(tampered))
    assert_refused(response, "saml_invalid")
    assert counts(tenant_a) == (1, 0) and signed_in_as(client) is None


def _wrap_variants(signed: str, victim: str) -> list[str]:
    """Signature-wrapping (XSW) responses: the signed assertion of mallory kept somewhere the
    signature check may find it, next to an unsigned copy naming the victim."""
    match = re.search(r"<saml:Assertion .*</saml:Assertion>", signed, re.S)
    assert match
    original = match.group(0)
    evil = re.sub(r'ID="[^"]+"', 'ID="_evil1"', original, count=1)
    evil = re.sub(r"<ds:Signature.*</ds:Signature>", "", evil, flags=re.S).replace(
        "mallory@acme.test", victim
    )
    head, tail = signed[: match.start()], signed[match.end() :]
    signature_match = re.search(r"<ds:Signature.*</ds:Signature>", original, re.S)
    assert signature_match
    signature = signature_match.group(0)
    return [
        head + evil + original + tail,  # XSW: evil assertion first, signed one after it
        head + original + evil + tail,  # signed one first, evil one after it
        # evil assertion carrying the signed original inside it (in Advice)
        head
        + evil.replace("</saml:Conditions>", "</saml:Conditions><saml:Advice>" + original + "</saml:Advice>")
        + tail,
        # the original's signature moved into the evil assertion (reference to a missing ID)
        head + evil.replace("</saml:Issuer>", "</saml:Issuer>" + signature, 1) + tail,
    ]


@pytest.mark.django_db
def test_signature_wrapping_is_refused(api, tenant_a, idp):
    provider = add_saml(api, tenant_a, idp)
    for variant in range(4):
        client = browser(tenant_a)
        request = authn_request(client, idp, provider)
        signed = respond(
            idp, request, name_id="mallory@acme.test", attributes={"email": ["mallory@acme.test"]}
        )
        wrapped = _wrap_variants(signed, tenant_a.owner_email)[variant]
        response = post_to_acs(client, request["acs_url"], idp.encode(wrapped))
        assert_refused(response)
        assert signed_in_as(client) is None, f"XSW variant {variant} signed in"
        assert counts(tenant_a) == (1, 0)


@pytest.mark.django_db
def test_comment_injected_name_id_is_refused(api, tenant_a, idp):
    provider = add_saml(api, tenant_a, idp, allowed_domains=["acme.test", "acme.test.evil.com"])
    client = browser(tenant_a)
    request = authn_request(client, idp, provider)
    # The attacker holds "admin@acme.test.evil.com" at an IdP the tenant trusts; the IdP signs it.
    signed = respond(
        idp, request, name_id="admin@acme.test.evil.com", attributes={"email": ["admin@acme.test.evil.com"]}
    )
    # Comments are outside exclusive canonicalisation: inserting one keeps the signature valid.
    injected = signed.replace("admin@acme.test.evil.com", "admin@acme.test<!-- -->.evil.com")
    with tenant_context(tenant_a.tenant):
        User.objects.create_user("admin@acme.test", "x-irrelevant-password", role=Role.ADMIN)
    response = post_to_acs(client, request["acs_url"], idp.encode(injected))
    assert_refused(response, "saml_invalid")
    assert signed_in_as(client) is None
    assert counts(tenant_a) == (2, 0)


@pytest.mark.django_db
def test_wrong_audience_is_refused(api, tenant_a, idp):
    provider = add_saml(api, tenant_a, idp)
    client = browser(tenant_a)
    request = authn_request(client, idp, provider)
    xml = respond(idp, request, audience="https://evil.example/saml/metadata/")
    assert_refused(post_to_acs(client, request["acs_url"], idp.encode(xml)), "saml_invalid")
    assert counts(tenant_a) == (1, 0)


@pytest.mark.django_db
def test_wrong_recipient_and_destination_are_refused(api, tenant_a, idp):
    provider = add_saml(api, tenant_a, idp)
    client = browser(tenant_a)
    request = authn_request(client, idp, provider)
    xml = respond(idp, request, acs_url="http://evil.localhost/acs/")
    assert_refused(post_to_acs(client, request["acs_url"], idp.encode(xml)), "saml_invalid")
    assert counts(tenant_a) == (1, 0)


@pytest.mark.django_db
def test_expired_assertion_is_refused(api, tenant_a, idp):
    provider = add_saml(api, tenant_a, idp)
    client = browser(tenant_a)
    request = authn_request(client, idp, provider)
    xml = respond(idp, request, not_on_or_after=datetime.now(tz=UTC) - timedelta(minutes=10))
    assert_refused(post_to_acs(client, request["acs_url"], idp.encode(xml)), "saml_invalid")
    assert counts(tenant_a) == (1, 0)


@pytest.mark.django_db
def test_unsolicited_response_is_refused(api, tenant_a, idp):
    """InResponseTo must name a request this browser started."""
    provider = add_saml(api, tenant_a, idp)
    client = browser(tenant_a)
    request = authn_request(client, idp, provider)
    xml = respond(idp, request, in_response_to="_an_id_we_never_sent")
    assert_refused(post_to_acs(client, request["acs_url"], idp.encode(xml)), "saml_unsolicited")
    # IdP-initiated sign-in (no InResponseTo) is refused unless the provider allows it.
    xml = respond(idp, request, in_response_to=None)
    assert_refused(post_to_acs(client, request["acs_url"], idp.encode(xml)))
    assert counts(tenant_a) == (1, 0)


@pytest.mark.django_db
def test_replayed_assertion_is_refused(api, tenant_a, idp):
    provider = add_saml(api, tenant_a, idp)
    client = browser(tenant_a)
    request = authn_request(client, idp, provider)
    encoded = idp.encode(respond(idp, request))
    assert post_to_acs(client, request["acs_url"], encoded).status_code == 302
    assert signed_in_as(client) == "ada@acme.test"
    attacker = browser(tenant_a)
    authn_request(attacker, idp, provider)  # the attacker's own pending sign-in
    assert_refused(post_to_acs(attacker, request["acs_url"], encoded), "saml_replayed")
    assert signed_in_as(attacker) is None


@pytest.mark.django_db
def test_replayed_idp_initiated_assertion_is_refused(api, tenant_a, idp):
    """With IdP-initiated sign-in allowed there is no InResponseTo to consume: only the
    assertion-id cache stops a replay."""
    provider = add_saml(api, tenant_a, idp, allow_idp_initiated=True)
    xml = idp.build_response(
        acs_url=provider["acs_url"], audience=provider["sp_entity_id"], in_response_to=None
    )
    first = browser(tenant_a)
    assert post_to_acs(first, provider["acs_url"], idp.encode(xml)).status_code == 302
    assert signed_in_as(first) == "ada@acme.test"
    second = browser(tenant_a)
    assert_refused(post_to_acs(second, provider["acs_url"], idp.encode(xml)), "saml_replayed")
    assert signed_in_as(second) is None


@pytest.mark.django_db
def test_provider_of_another_tenant_is_refused(api, tenant_a, tenant_b, idp):
    provider_a = add_saml(api, tenant_a, idp)
    with SamlTestIdp() as idp_b:
        provider_b = add_saml(api, tenant_b, idp_b, name="Globex IdP")
        # B's provider id on A's host: unknown there.
        assert browser(tenant_a).post(f"/accounts/saml/{provider_b['id']}/login/").status_code == 404
        # A response B's IdP signed for B, posted to A's ACS: refused.
        client = browser(tenant_a)
        request = authn_request(client, idp, provider_a)
        xml = idp_b.build_response(
            acs_url=provider_b["acs_url"], audience=provider_b["sp_entity_id"], in_response_to=request["id"]
        )
        assert_refused(post_to_acs(client, provider_a["acs_url"], idp_b.encode(xml)), "saml_invalid")
    assert counts(tenant_a) == (1, 0)
    with tenant_context(tenant_a.tenant):
        assert AuditEvent.objects.filter(type=AuditEvent.Type.SSO_LOGIN_REFUSED).exists()
