"""Identity providers cannot make the server fetch something inside (issue 6, section 4).

The OIDC ``server_url`` and the SAML ``metadata_url`` are checked when a provider is saved, and
every fetch (discovery, JWKS, token endpoint, metadata) goes through ``leanvibe.outbound``: a
refused target is a 400 ``outbound_url_refused`` naming the rule, audited ``outbound.refused``,
and a failed fetch never puts its exception text (or anything of the body) in the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from allauth.socialaccount.models import SocialApp
from django_tenants.utils import tenant_context

from accounts.models import AuditEvent
from accounts.testing.oidc_provider import OidcTestProvider
from accounts.testing.saml_idp import SamlTestIdp
from accounts.tests.test_sso_oidc import REDIRECT, acme_oidc_provider, add_oidc
from leanvibe.tests.outbound_helpers import (
    HttpTestServer,
    connections_recorded,
    endless_body,
    loopback_listener,
    slow_headers,
)

PROVIDERS = "/api/v1/auth/sso/providers"


@pytest.fixture
def idp() -> Iterator[OidcTestProvider]:
    yield from acme_oidc_provider()


@pytest.fixture
def private_refused(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = False
    settings.OUTBOUND_ALLOWED_NETWORKS = []


def _refusals(tenant: Any) -> list[dict[str, Any]]:
    with tenant_context(tenant.tenant):
        return [
            {**e.data, "actor_email": e.actor_email}
            for e in AuditEvent.objects.filter(type=AuditEvent.Type.OUTBOUND_REFUSED)
        ]


@pytest.mark.django_db
@pytest.mark.usefixtures("private_refused")
def test_saving_an_oidc_provider_that_points_inside_is_refused_and_audited(api, tenant_a):
    token = tenant_a.login(api)
    with loopback_listener() as listener, connections_recorded() as attempts:
        response = api.post(
            PROVIDERS,
            {
                "type": "oidc",
                "name": "Inside",
                "server_url": f"https://127.0.0.1:{listener.port}/realms/x?secret=s3",
                "client_id": "c",
                "client_secret": "s",
            },
            host=tenant_a.host,
            token=token,
        )
        assert listener.connections() == 0
    assert response.status_code == 400, response.body
    assert response.body["error"] == "outbound_url_refused"
    assert response.body["detail"] == ("This URL is refused: the address 127.0.0.1 is a loopback address.")
    assert response.body["rule"] == "loopback"
    assert all(target[1] != listener.port for target in attempts.connects)
    with tenant_context(tenant_a.tenant):
        assert not SocialApp.objects.exists()
    [event] = _refusals(tenant_a)
    assert event["host"] == "127.0.0.1" and event["rule"] == "loopback"
    assert event["actor_email"] == tenant_a.owner_email
    assert "s3" not in str(event)  # never the URL's query


@pytest.mark.django_db
@pytest.mark.usefixtures("private_refused")
def test_saving_a_saml_provider_whose_metadata_url_points_inside_is_refused(api, tenant_a):
    token = tenant_a.login(api)
    with loopback_listener() as listener:
        for url in (
            f"https://localhost:{listener.port}/metadata",
            f"https://[::ffff:127.0.0.1]:{listener.port}/metadata",
            f"https://2130706433:{listener.port}/metadata",
            f"http://example.com:{listener.port}/metadata",
        ):
            response = api.post(
                PROVIDERS,
                {"type": "saml", "name": "Inside", "metadata_url": url},
                host=tenant_a.host,
                token=token,
            )
            assert response.status_code == 400, (url, response.body)
            assert response.body["error"] == "outbound_url_refused", url
        assert listener.connections() == 0
    assert sorted(e["rule"] for e in _refusals(tenant_a)) == ["loopback", "loopback", "loopback", "scheme"]


@pytest.mark.django_db
@pytest.mark.usefixtures("private_refused")
def test_changing_a_provider_to_point_inside_is_refused(api, tenant_a, idp, settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True
    provider = add_oidc(api, tenant_a, idp)
    settings.OUTBOUND_ALLOW_PRIVATE = False
    token = tenant_a.login(api)
    response = api.patch(
        f"{PROVIDERS}/{provider['id']}",
        {"server_url": "https://169.254.169.254/latest/meta-data/"},
        host=tenant_a.host,
        token=token,
    )
    assert response.status_code == 400 and response.body["error"] == "outbound_url_refused"
    assert "169.254.169.254 is a link-local address" in response.body["detail"]
    with tenant_context(tenant_a.tenant):
        assert SocialApp.objects.get().settings["server_url"] == idp.issuer
    assert [e["rule"] for e in _refusals(tenant_a)] == ["link_local"]


@pytest.mark.django_db
def test_a_provider_that_became_internal_is_refused_again_at_sign_in(api, tenant_a, idp, settings):
    """Checked at save and again at each fetch: the local IdP is allowed while private
    addresses are (development), then refused once they are not."""
    provider = add_oidc(api, tenant_a, idp)
    settings.OUTBOUND_ALLOW_PRIVATE = False
    with connections_recorded() as attempts:
        response = api.post(
            "/api/v1/auth/sso/initiate",
            {"provider": provider["id"], "redirect_uri": REDIRECT},
            host=tenant_a.host,
        )
    assert response.status_code == 400 and response.body["error"] == "outbound_url_refused"
    assert response.body["rule"] == "scheme"
    idp_port = int(idp.issuer.rsplit(":", 1)[1])
    assert [t for t in attempts.connects if t[1] == idp_port] == []
    assert [e["rule"] for e in _refusals(tenant_a)] == ["scheme"]


@pytest.mark.django_db
def test_oversized_metadata_is_cut_and_nothing_of_it_is_answered(api, tenant_a):
    token = tenant_a.login(api)
    routes = {"/metadata": endless_body(total=64 * 1024 * 1024, declare_length=False)}
    with HttpTestServer(routes=routes) as server:
        response = api.post(
            PROVIDERS,
            {"type": "saml", "name": "Huge", "metadata_url": f"http://127.0.0.1:{server.port}/metadata"},
            host=tenant_a.host,
            token=token,
        )
        assert server.wait_aborted(1)  # the client stopped reading: 64 MiB were never taken in
    assert response.status_code == 400, response.body
    assert response.body == {
        "error": "sso_metadata_unreachable",
        "detail": "The IdP metadata could not be fetched: the answer is larger than 1 MiB.",
    }


@pytest.mark.django_db
def test_a_slow_metadata_server_is_timed_out_without_exception_text(api, tenant_a, settings):
    settings.OUTBOUND_TIMEOUT = 0.5
    token = tenant_a.login(api)
    with HttpTestServer(routes={"/metadata": slow_headers(3)}) as server:
        response = api.post(
            PROVIDERS,
            {"type": "saml", "name": "Slow", "metadata_url": f"http://127.0.0.1:{server.port}/metadata"},
            host=tenant_a.host,
            token=token,
        )
    assert response.status_code == 400
    assert response.body == {
        "error": "sso_metadata_unreachable",
        "detail": "The IdP metadata could not be fetched: the server took too long to answer.",
    }


@pytest.mark.django_db
def test_an_unreachable_metadata_url_answers_no_exception_text(api, tenant_a):
    token = tenant_a.login(api)
    with loopback_listener() as listener:
        port = listener.port  # closed below: nothing listens there any more
    response = api.post(
        PROVIDERS,
        {"type": "saml", "name": "Gone", "metadata_url": f"http://127.0.0.1:{port}/metadata"},
        host=tenant_a.host,
        token=token,
    )
    assert response.status_code == 400
    assert response.body == {
        "error": "sso_metadata_unreachable",
        "detail": "The IdP metadata could not be fetched: the server could not be reached.",
    }


@pytest.mark.django_db
def test_an_unreachable_identity_provider_at_sign_in_is_a_502_without_exception_text(
    api, client, tenant_a, idp
):
    provider = add_oidc(api, tenant_a, idp)
    idp.stop()
    response = client.post(
        "/api/v1/auth/sso/initiate",
        {"provider": provider["id"], "redirect_uri": REDIRECT},
        content_type="application/json",
        HTTP_HOST=tenant_a.host,
    )
    assert response.status_code == 502
    assert response.json() == {
        "error": "sso_provider_unreachable",
        "detail": "The identity provider could not be reached: the server could not be reached.",
    }


@pytest.mark.django_db
def test_metadata_by_url_still_works_with_private_addresses_allowed(api, tenant_a):
    with SamlTestIdp() as saml_idp, connections_recorded() as attempts:
        token = tenant_a.login(api)
        response = api.post(
            PROVIDERS,
            {"type": "saml", "name": "By URL", "metadata_url": f"{saml_idp.base_url}/metadata"},
            host=tenant_a.host,
            token=token,
        )
    assert response.status_code == 201 and response.body["idp_entity_id"] == saml_idp.entity_id
    port = int(saml_idp.base_url.rsplit(":", 1)[1])
    assert [t for t in attempts.connects if t[1] == port] == [("127.0.0.1", port)]
    with tenant_context(tenant_a.tenant):
        # Fetched once, here: allauth would fetch an idp "metadata_url" itself, unguarded.
        assert "metadata_url" not in SocialApp.objects.get().settings["idp"]


@pytest.mark.django_db
@pytest.mark.parametrize("allow_private", [True, False])
@pytest.mark.parametrize(
    "url", ["https://[::1", "https://[not-an-ip]/", "http://exa mple.com/", "https://:0/", "https://a:99999/"]
)
def test_malformed_provider_urls_are_a_400(api, tenant_a, settings, allow_private, url):
    settings.OUTBOUND_ALLOW_PRIVATE = allow_private
    token = tenant_a.login(api)
    for body in (
        {"type": "oidc", "name": "Bad", "server_url": url, "client_id": "c"},
        {"type": "saml", "name": "Bad", "metadata_url": url},
    ):
        response = api.post(PROVIDERS, body, host=tenant_a.host, token=token)
        assert response.status_code == 400, (body, response.body)
        assert response.body["error"] in ("validation_error", "outbound_url_refused")
