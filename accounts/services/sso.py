"""Single sign-on per tenant: identity providers, the OpenID Connect flow, and who signs in.

Each tenant's providers are allauth ``SocialApp`` rows in the tenant's own schema:

- OpenID Connect: ``provider="openid_connect"``, ``provider_id=<slug>``, ``client_id``, the
  client secret Fernet-encrypted in ``secret``, and ``settings["server_url"]`` (issuer or
  discovery URL).
- SAML 2.0: ``provider="saml"``, ``provider_id=client_id=<slug>`` (the slug is the
  "organization" of allauth's SAML URLs), ``settings["idp"]`` parsed from the IdP's metadata,
  and ``settings["advanced"]`` in strict mode with signed assertions required. allauth runs the
  SAML flow; ``accounts.views.sso.saml_finish_acs`` adds replay and comment checks.

Our own policy lives under ``settings["leanvibe"]``: allowed email domains, the claim or
attribute holding a display name and a role, and the mapping of role values.

The OpenID Connect flow is ours rather than allauth's: allauth sends no ``nonce`` and skips the
ID token's signature when the token came straight from the token endpoint. Here every sign-in,
web or API, uses state + nonce + PKCE (S256) kept server-side in the tenant-namespaced cache,
and the ID token is always verified against the issuer's JWKS (signature, ``iss``, ``aud``,
``exp``, ``iat``, ``nonce``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlencode, urlparse

import jwt
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse

from accounts.mfa_adapter import decrypt_text, encrypt_text
from accounts.models import AuditEvent, Role, User
from accounts.services.audit import audit_record
from accounts.services.notify import owners_notify_security_change
from accounts.services.sso_signin import SsoIdentity, amr_has_mfa
from leanvibe.errors import DomainError
from leanvibe.outbound import (
    MIB,
    OutboundError,
    OutboundRefused,
    OutboundTooLarge,
    outbound_request,
    outbound_url_check,
)
from tenants.links import TENANT_URLCONF, tenant_url

if TYPE_CHECKING:
    from tenants.models import Tenant

_P = ParamSpec("_P")
_R = TypeVar("_R")
OIDC = "openid_connect"
SAML = "saml"
KIND_FOR_PROVIDER = {OIDC: "oidc", SAML: "saml"}
PROVIDER_FOR_KIND = {"oidc": OIDC, "saml": SAML}
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
# Roles an identity provider may grant: never owner (owners are made inside LeanVibe).
MAPPABLE_ROLES = {Role.ADMIN.value, Role.MEMBER.value}
# Asymmetric algorithms only: "none" and HMAC (keyed with the public client secret) are refused.
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
# Discovery documents, key sets, token answers and SAML metadata are small: larger is refused.
FETCH_MAX_BYTES = MIB
DISCOVERY_CACHE_SECONDS = 3600
DEFAULT_SAML_ATTRIBUTE_MAPPING: dict[str, list[str]] = {
    "uid": ["urn:oasis:names:tc:SAML:attribute:subject-id"],
    "email": [
        "email",
        "urn:oid:0.9.2342.19200300.100.1.3",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    ],
    "name": ["name", "displayName", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"],
    "role": ["role", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"],
}


def _refuse(code: str, detail: str, *, status: int = 400) -> DomainError:
    return DomainError(code, detail, status=status)


# --- reads ----------------------------------------------------------------------------------


def sso_provider_list() -> list[SocialApp]:
    return list(SocialApp.objects.filter(provider__in=[OIDC, SAML]).order_by("name", "pk"))


def sso_provider_get(slug: str) -> SocialApp:
    """The provider ``slug`` of the current tenant's schema; 404 otherwise (a slug of another
    tenant is unknown here: its apps live in its own schema)."""
    app = (
        SocialApp.objects.filter(provider__in=[OIDC, SAML], provider_id=slug).first()
        if isinstance(slug, str) and SLUG_RE.match(slug)
        else None
    )
    if app is None:
        raise _refuse("sso_provider_not_found", "No single sign-on provider with this id.", status=404)
    return app


def policy_of(app: SocialApp) -> dict[str, Any]:
    policy: dict[str, Any] = dict(app.settings.get("leanvibe") or {})
    policy.setdefault("allowed_domains", [])
    policy.setdefault("role_mapping", {})
    policy.setdefault("name_claim", "name")
    policy.setdefault("role_claim", "")
    return policy


def _path(name: str, slug: str) -> str:
    return reverse(name, args=[slug], urlconf=TENANT_URLCONF)


def saml_sp_urls(*, tenant: Tenant, slug: str, provider_settings: dict[str, Any]) -> dict[str, str]:
    """The service provider's URLs of SAML provider ``slug`` on the tenant's canonical site, and
    its entity id: the one stored when the provider was created (it must never change once an
    IdP knows it), else the metadata URL."""
    metadata_url = tenant_url(tenant, _path("saml_metadata", slug))
    stored = (provider_settings.get("sp") or {}).get("entity_id")
    return {
        "sp_entity_id": stored or metadata_url,
        "sp_metadata_url": metadata_url,
        "acs_url": tenant_url(tenant, _path("saml_acs", slug)),
        "sls_url": tenant_url(tenant, _path("saml_sls", slug)),
        "login_url": tenant_url(tenant, _path("saml_login", slug)),
    }


def sso_urls(app: SocialApp, tenant: Tenant) -> dict[str, str]:
    """What the tenant admin copies into the identity provider's configuration: URLs on the
    tenant's primary domain with the configured scheme and port, whichever host the admin
    reads them through."""
    if app.provider == SAML:
        urls = saml_sp_urls(tenant=tenant, slug=app.client_id, provider_settings=app.settings or {})
        urls.pop("sls_url")
        return urls
    return {
        "redirect_uri": tenant_url(tenant, _path("openid_connect_callback", app.provider_id)),
        "login_url": tenant_url(tenant, _path("openid_connect_login", app.provider_id)),
    }


def sso_provider_describe(app: SocialApp, tenant: Tenant) -> dict[str, Any]:
    policy = policy_of(app)
    out: dict[str, Any] = {
        "id": app.provider_id,
        "type": KIND_FOR_PROVIDER[app.provider],
        "name": app.name,
        "allowed_domains": policy["allowed_domains"],
        "role_mapping": policy["role_mapping"],
        "name_claim": policy["name_claim"],
        "role_claim": policy["role_claim"],
        **sso_urls(app, tenant),
    }
    if app.provider == OIDC:
        out.update(
            server_url=app.settings.get("server_url", ""),
            client_id=app.client_id,
            has_client_secret=bool(app.secret),
        )
    else:
        idp = app.settings.get("idp") or {}
        out.update(
            idp_entity_id=idp.get("entity_id", ""),
            idp_sso_url=idp.get("sso_url", ""),
            metadata_url=policy.get("metadata_url", ""),
            attribute_mapping=app.settings.get("attribute_mapping") or {},
            allow_idp_initiated=not app.settings.get("advanced", {}).get("reject_idp_initiated_sso", True),
        )
    return out


# --- configuration writes --------------------------------------------------------------------


def _check_url(value: str, name: str) -> str:
    """The form of a URL (http or https, a host). Where the server will fetch it, the outbound
    guard's rules apply as well (``leanvibe.outbound``)."""
    try:
        parsed = urlparse(value)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise _refuse("validation_error", f"{name}: enter an http(s) URL.")
    return value


def _clean_domains(domains: list[str] | None) -> list[str]:
    cleaned = []
    for domain in domains or []:
        d = str(domain).strip().lower().lstrip("@")
        if not re.match(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$", d):
            raise _refuse("validation_error", f"allowed_domains: “{domain}” is not a domain name.")
        cleaned.append(d)
    return sorted(set(cleaned))


def _clean_role_mapping(mapping: dict[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for value, role in (mapping or {}).items():
        if role not in MAPPABLE_ROLES:
            raise _refuse("validation_error", "role_mapping: roles may only be “admin” or “member”.")
        out[str(value)] = role
    return out


def saml_metadata_fetch(*, url: str) -> str:
    """The IdP metadata document at ``url``, through the outbound guard (at most 1 MiB). A
    refused URL is the guard's 400 ``outbound_url_refused``; any other failure a 400
    ``sso_metadata_unreachable`` that says what went wrong in our words, never the exception's."""
    _check_url(url, "metadata_url")
    try:
        response = outbound_request(method="GET", url=url, purpose="SAML metadata", max_bytes=FETCH_MAX_BYTES)
    except OutboundRefused:
        raise
    except OutboundError as exc:
        raise _refuse(
            "sso_metadata_unreachable", f"The IdP metadata could not be fetched: {exc.reason}."
        ) from exc
    if not 200 <= response.status < 300:
        raise _refuse(
            "sso_metadata_unreachable",
            f"The IdP metadata could not be fetched: the server answered {response.status}.",
        )
    return response.text


def saml_idp_from_metadata(
    *, metadata_xml: str = "", metadata_url: str = "", entity_id: str = ""
) -> dict[str, str]:
    """Parse IdP metadata (inline XML, or fetched from its URL when no XML is given) into
    allauth's ``idp`` settings."""
    from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

    if metadata_url and not metadata_xml:
        metadata_xml = saml_metadata_fetch(url=metadata_url)
    try:
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(metadata_xml, entity_id=entity_id or None)
    except Exception as exc:
        raise _refuse("validation_error", "metadata: this is not valid SAML IdP metadata.") from exc
    idp = parsed.get("idp") or {}
    sso_url = (idp.get("singleSignOnService") or {}).get("url", "")
    cert = idp.get("x509cert") or ((idp.get("x509certMulti") or {}).get("signing") or [""])[0]
    if not idp.get("entityId") or not sso_url or not cert:
        raise _refuse(
            "validation_error",
            "metadata: it must name the IdP's entity id, a single sign-on URL and a signing certificate.",
        )
    return {"entity_id": idp["entityId"], "sso_url": sso_url, "x509cert": cert}


def _fetch_before_transaction(*, provider: str, data: ProviderInput) -> ProviderInput:
    """The network part of saving a provider, done before its transaction opens: a slow
    identity provider holds no row lock, and the audit of a refused URL is not rolled back with
    the refused change. The OIDC ``server_url`` is checked against the outbound rules (resolved
    unless private addresses are allowed; it is fetched, and checked again, at each sign-in);
    the SAML ``metadata_url`` is fetched through the guard and its document used as the XML."""
    if provider == OIDC and data.server_url and data.server_url.strip():
        url = _check_url(data.server_url.strip(), "server_url")
        try:
            outbound_url_check(url=url, purpose="OIDC server_url")
        except OutboundRefused:
            raise
        except OutboundError as exc:
            raise _refuse("validation_error", f"server_url: {exc.reason}.") from exc
    if provider == SAML and data.metadata_url:
        return replace(data, metadata_xml=saml_metadata_fetch(url=data.metadata_url))
    return data


def _network_before_transaction(service: Callable[_P, _R]) -> Callable[_P, _R]:
    """Runs ``_fetch_before_transaction`` on the service's ``data`` (for the provider type of its
    ``kind`` or ``app``) before the service and its transaction start."""

    @functools.wraps(service)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        app, data = kwargs.get("app"), kwargs.get("data")
        provider = (
            app.provider if isinstance(app, SocialApp) else PROVIDER_FOR_KIND.get(str(kwargs.get("kind")))
        )
        if provider and isinstance(data, ProviderInput):
            kwargs["data"] = _fetch_before_transaction(provider=provider, data=data)
        return service(*args, **kwargs)

    return wrapper


def _saml_advanced(*, allow_idp_initiated: bool) -> dict[str, Any]:
    return {
        "strict": True,
        "want_assertion_signed": True,
        "want_message_signed": False,
        "reject_deprecated_algorithm": True,
        "reject_idp_initiated_sso": not allow_idp_initiated,
        "want_name_id": True,
        "want_attribute_statement": False,
        "allow_single_label_domains": False,
    }


@dataclass
class ProviderInput:
    """Fields an admin may set; ``None`` means "leave unchanged" on update."""

    name: str | None = None
    # OIDC
    server_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    # SAML
    metadata_xml: str | None = None
    metadata_url: str | None = None
    entity_id: str | None = None
    attribute_mapping: dict[str, Any] | None = None
    allow_idp_initiated: bool | None = None
    # both
    allowed_domains: list[str] | None = None
    role_mapping: dict[str, str] | None = None
    name_claim: str | None = None
    role_claim: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _apply(app: SocialApp, data: ProviderInput, *, creating: bool) -> None:
    settings_: dict[str, Any] = dict(app.settings or {})
    policy = dict(settings_.get("leanvibe") or {})
    if data.name is not None:
        if not data.name.strip() or len(data.name.strip()) > 40:
            raise _refuse("validation_error", "name: 1 to 40 characters.")
        app.name = data.name.strip()
    if app.provider == OIDC:
        if data.server_url is not None:
            settings_["server_url"] = _check_url(data.server_url.strip(), "server_url")
        if data.client_id is not None:
            if not data.client_id.strip():
                raise _refuse("validation_error", "client_id: this field is required.")
            app.client_id = data.client_id.strip()
        if data.client_secret is not None:
            app.secret = encrypt_text(data.client_secret) if data.client_secret else ""
        settings_["oauth_pkce_enabled"] = True
        if creating and not (settings_.get("server_url") and app.client_id):
            raise _refuse("validation_error", "server_url and client_id are required for OpenID Connect.")
    else:
        if data.metadata_xml or data.metadata_url:
            settings_["idp"] = saml_idp_from_metadata(
                metadata_xml=data.metadata_xml or "",
                metadata_url=data.metadata_url or "",
                entity_id=data.entity_id or "",
            )
            policy["metadata_url"] = data.metadata_url or ""
        elif creating:
            raise _refuse("validation_error", "metadata_xml or metadata_url is required for SAML.")
        if data.attribute_mapping is not None:
            mapping: dict[str, list[str]] = {}
            for key, names in data.attribute_mapping.items():
                if key not in ("uid", "email", "name", "role", "first_name", "last_name"):
                    raise _refuse("validation_error", f"attribute_mapping: unknown key “{key}”.")
                mapping[key] = [names] if isinstance(names, str) else [str(n) for n in names]
            settings_["attribute_mapping"] = {**DEFAULT_SAML_ATTRIBUTE_MAPPING, **mapping}
        settings_.setdefault("attribute_mapping", DEFAULT_SAML_ATTRIBUTE_MAPPING)
        allow = data.allow_idp_initiated
        if allow is None:
            allow = not settings_.get("advanced", {}).get("reject_idp_initiated_sso", True)
        settings_["advanced"] = _saml_advanced(allow_idp_initiated=allow)
        # Emails asserted by the organisation's own IdP are its directory's: treated as verified.
        settings_["verified_email"] = True
    if data.allowed_domains is not None:
        policy["allowed_domains"] = _clean_domains(data.allowed_domains)
    if data.role_mapping is not None:
        policy["role_mapping"] = _clean_role_mapping(data.role_mapping)
    if data.name_claim is not None:
        policy["name_claim"] = data.name_claim.strip()[:200]
    if data.role_claim is not None:
        policy["role_claim"] = data.role_claim.strip()[:200]
    settings_["leanvibe"] = policy
    app.settings = settings_


def _unique_slug(name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:30] or "sso"
    candidate, n = base, 1
    while SocialApp.objects.filter(provider_id=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _actor(request: HttpRequest | None) -> User | None:
    user = getattr(request, "user", None)
    return user if isinstance(user, User) else None


@_network_before_transaction
@transaction.atomic
def sso_provider_create(
    *, tenant: Tenant, kind: str, data: ProviderInput, request: HttpRequest | None = None
) -> SocialApp:
    """Add an identity provider (an owner's action: the view checks the role). Audited, and
    every owner is emailed."""
    if kind not in PROVIDER_FOR_KIND:
        raise _refuse("validation_error", "type: choose “oidc” or “saml”.")
    if not data.name or not data.name.strip():
        raise _refuse("validation_error", "name: this field is required.")
    app = SocialApp(provider=PROVIDER_FOR_KIND[kind], provider_id=_unique_slug(data.name))
    if app.provider == SAML:
        app.client_id = app.provider_id
    _apply(app, data, creating=True)
    if app.provider == SAML:
        # Given once, kept for good (allauth reads settings["sp"]["entity_id"]): a later change
        # of SITE_PORT or of the tenant's domain must not change what the IdP knows us by.
        entity_id = saml_sp_urls(tenant=tenant, slug=app.client_id, provider_settings={})["sp_entity_id"]
        app.settings = {**app.settings, "sp": {"entity_id": entity_id}}
    app.full_clean(exclude=["sites"])
    app.save()
    audit_record(
        type=AuditEvent.Type.SSO_PROVIDER_ADDED, request=request, provider=app.provider_id, kind=kind
    )
    owners_notify_security_change(
        tenant=tenant,
        actor=_actor(request),
        change=f"Identity provider “{app.name}” ({KIND_FOR_PROVIDER[app.provider].upper()}) was added.",
    )
    return app


@_network_before_transaction
@transaction.atomic
def sso_provider_update(
    *, tenant: Tenant, app: SocialApp, data: ProviderInput, request: HttpRequest | None = None
) -> SocialApp:
    app = SocialApp.objects.select_for_update().get(pk=app.pk)
    _apply(app, data, creating=False)
    app.full_clean(exclude=["sites"])
    app.save()
    changed = sorted(k for k, v in vars(data).items() if v is not None and k != "extra")
    fields = [f for f in changed if f != "client_secret"] + (["client_secret"] if data.client_secret else [])
    audit_record(
        type=AuditEvent.Type.SSO_PROVIDER_CHANGED, request=request, provider=app.provider_id, fields=fields
    )
    owners_notify_security_change(
        tenant=tenant,
        actor=_actor(request),
        change=f"Identity provider “{app.name}” was changed ({', '.join(fields) or 'no fields'}).",
    )
    return app


@transaction.atomic
def sso_provider_delete(*, tenant: Tenant, app: SocialApp, request: HttpRequest | None = None) -> None:
    slug = app.provider_id
    SocialAccount.objects.filter(provider=slug).delete()
    app.delete()
    audit_record(type=AuditEvent.Type.SSO_PROVIDER_REMOVED, request=request, provider=slug)
    owners_notify_security_change(
        tenant=tenant, actor=_actor(request), change=f"Identity provider “{app.name}” was removed."
    )


def sso_only_enabled(tenant: Tenant | None) -> bool:
    return bool(tenant is not None and (tenant.settings or {}).get("sso_only"))


def password_login_check(*, tenant: Tenant | None, user: User | None, password_valid: bool) -> None:
    """Refuse a password sign-in when the tenant made SSO the only way in.

    Called after the password was checked, whatever the outcome: every attempt — a member's
    right or wrong password, an unknown email, an inactive account — gets the same 403
    ``sso_required``, so the answer never tells whether the password was right. Owners keep
    their password as a break-glass way in (a broken IdP cannot lock an organisation out): only
    an active owner with the right password passes. Outside SSO-only tenants this does nothing.
    """
    if not sso_only_enabled(tenant):
        return
    if user is not None and password_valid and user.is_active and user.role == Role.OWNER:
        return
    raise _refuse(
        "sso_required",
        "This organisation signs in with single sign-on only: use your identity provider.",
        status=403,
    )


def sso_settings_of(tenant: Tenant | None) -> dict[str, bool]:
    stored = (tenant.settings or {}) if tenant is not None else {}
    return {"sso_only": bool(stored.get("sso_only")), "trust_idp_mfa": bool(stored.get("trust_idp_mfa"))}


_SETTING_LABELS = {
    "sso_only": (
        "Single sign-on is now the only way in (owners keep their password).",
        "Passwords are accepted again.",
    ),
    "trust_idp_mfa": (
        "A second factor given at the identity provider is now accepted instead of LeanVibe's.",
        "Members with a second factor must now give it after single sign-on too.",
    ),
}


@transaction.atomic
def sso_settings_update(
    *,
    tenant: Tenant,
    sso_only: bool | None = None,
    trust_idp_mfa: bool | None = None,
    request: HttpRequest | None = None,
) -> dict[str, bool]:
    """Change the tenant's SSO settings (an owner's action). Each change is audited and emailed
    to every owner; unchanged values are left alone."""
    wanted = {
        k: v for k, v in {"sso_only": sso_only, "trust_idp_mfa": trust_idp_mfa}.items() if v is not None
    }
    if wanted.get("sso_only") and not sso_provider_list():
        raise _refuse(
            "sso_provider_required", "Add an identity provider before making SSO the only way in.", status=409
        )
    locked = type(tenant).objects.select_for_update().get(pk=tenant.pk)
    current = sso_settings_of(locked)
    changes: dict[str, Any] = {k: bool(v) for k, v in wanted.items() if current[k] != bool(v)}
    if changes:
        locked.settings = {**(locked.settings or {}), **changes}
        locked.save(update_fields=["settings"])
        audit_record(type=AuditEvent.Type.SECURITY_SETTINGS_CHANGED, request=request, **changes)
        owners_notify_security_change(
            tenant=tenant,
            actor=_actor(request),
            change="\n".join(_SETTING_LABELS[k][0 if v else 1] for k, v in changes.items()),
        )
    tenant.settings = locked.settings
    return sso_settings_of(locked)


# --- refusals ---------------------------------------------------------------------------


def audit_sso_refused(*, request: HttpRequest | None, provider: str, reason: str, email: str = "") -> None:
    audit_record(
        type=AuditEvent.Type.SSO_LOGIN_REFUSED,
        request=request,
        actor_email=email[:254],
        provider=provider,
        reason=reason[:300],
    )


# --- OpenID Connect ------------------------------------------------------------------------


def _http_json(
    method: str,
    url: str,
    *,
    purpose: str,
    form: dict[str, str] | None = None,
    basic_auth: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One JSON exchange with an identity provider, through the outbound guard (checked at each
    fetch, 1 MiB at most). A refused URL stays the guard's 400 ``outbound_url_refused``."""
    try:
        response = outbound_request(
            method=method,
            url=url,
            purpose=purpose,
            form=form,
            basic_auth=basic_auth,
            headers={"Accept": "application/json"},
            max_bytes=FETCH_MAX_BYTES,
        )
    except OutboundRefused:
        raise
    except OutboundTooLarge as exc:
        raise _refuse(
            "sso_provider_error", f"The identity provider's answer was refused: {exc.reason}.", status=502
        ) from exc
    except OutboundError as exc:
        raise _refuse(
            "sso_provider_unreachable",
            f"The identity provider could not be reached: {exc.reason}.",
            status=502,
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _refuse(
            "sso_provider_error", "The identity provider answered with something other than JSON.", status=502
        )
    if response.status >= 400:
        error = str(body.get("error_description") or body.get("error") or response.status)[:200]
        raise _refuse(
            "sso_token_exchange_failed", f"The identity provider refused the sign-in: {error}.", status=401
        )
    return body


def oidc_discovery(app: SocialApp) -> dict[str, Any]:
    url = app.settings.get("server_url", "")
    if "/.well-known/" not in url:
        url = url.rstrip("/") + "/.well-known/openid-configuration"
    key = "sso:oidc:discovery:" + hashlib.sha256(url.encode()).hexdigest()
    config = cache.get(key)
    if config is None:
        config = _http_json("GET", url, purpose="OIDC discovery")
        for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(config.get(name), str):
                raise _refuse(
                    "sso_provider_error", f"The provider's discovery document lacks {name}.", status=502
                )
        cache.set(key, config, DISCOVERY_CACHE_SECONDS)
    return config


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _state_key(state: str) -> str:
    return "sso:oidc:state:" + hashlib.sha256(state.encode()).hexdigest()


@dataclass(frozen=True)
class OidcStart:
    authorization_url: str
    state: str
    expires_in: int


def oidc_begin(*, app: SocialApp, redirect_uri: str, flow: str, next_url: str = "") -> OidcStart:
    """Start an authorization-code sign-in: state, nonce and PKCE verifier kept server-side."""
    if app.provider != OIDC:
        raise _refuse("sso_wrong_provider_type", "This provider is not an OpenID Connect provider.")
    _check_url(redirect_uri, "redirect_uri")
    config = oidc_discovery(app)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier, challenge = _pkce_pair()
    ttl = settings.SSO_STATE_TTL
    cache.set(
        _state_key(state),
        {
            "provider": app.provider_id,
            "nonce": nonce,
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
            "flow": flow,
            "next": next_url,
        },
        ttl,
    )
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid email profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    endpoint = config["authorization_endpoint"]
    separator = "&" if "?" in endpoint else "?"
    return OidcStart(f"{endpoint}{separator}{urlencode(params)}", state, ttl)


def oidc_state_take(*, state: str, flow: str) -> dict[str, Any]:
    """Consume a stashed state once. Unknown, expired, used, or from another flow: refused."""
    if not isinstance(state, str) or not 16 <= len(state) <= 200:
        raise _refuse("sso_state_invalid", "The sign-in state is unknown or expired: start again.")
    key = _state_key(state)
    stashed = cache.get(key)
    # delete() answers whether this call removed the key: of two concurrent callbacks, one wins.
    if stashed is None or not cache.delete(key) or stashed.get("flow") != flow:
        raise _refuse("sso_state_invalid", "The sign-in state is unknown or expired: start again.")
    return dict(stashed)


def _verify_id_token(*, app: SocialApp, config: dict[str, Any], id_token: str, nonce: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise _refuse("sso_id_token_invalid", "The ID token is malformed.", status=401) from exc
    algorithm = header.get("alg")
    allowed = [
        a
        for a in ID_TOKEN_ALGORITHMS
        if a in config.get("id_token_signing_alg_values_supported", ID_TOKEN_ALGORITHMS)
    ]
    if algorithm not in allowed:
        raise _refuse(
            "sso_id_token_invalid", "The ID token is not signed with an accepted algorithm.", status=401
        )
    jwks = _http_json("GET", config["jwks_uri"], purpose="OIDC JWKS")
    keys = [
        k
        for k in jwks.get("keys", [])
        if isinstance(k, dict) and (header.get("kid") is None or k.get("kid") == header.get("kid"))
    ]
    if not keys:
        raise _refuse(
            "sso_id_token_invalid", "The ID token's signing key is not among the provider's keys.", status=401
        )
    try:
        key = jwt.PyJWK(keys[0], algorithm=algorithm)
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key=key.key,
            algorithms=[algorithm],
            audience=app.client_id,
            issuer=config["issuer"],
            leeway=settings.SSO_CLOCK_SKEW,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise _refuse("sso_id_token_invalid", f"The ID token was refused: {exc}.", status=401) from exc
    azp = claims.get("azp")
    if isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1 and azp != app.client_id:
        raise _refuse("sso_id_token_invalid", "The ID token was issued to another client.", status=401)
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise _refuse(
            "sso_nonce_mismatch", "The ID token does not answer this sign-in (nonce mismatch).", status=401
        )
    return claims


def _claim_values(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return (str(value),) if value not in (None, "") else ()


def oidc_identity(app: SocialApp, claims: dict[str, Any]) -> SsoIdentity:
    policy = policy_of(app)
    verified = claims.get("email_verified")
    return SsoIdentity(
        uid=str(claims["sub"]),
        email=str(claims.get("email") or ""),
        email_verified=verified is True or str(verified).lower() == "true",
        name=str(claims.get(policy["name_claim"] or "name") or ""),
        role_values=_claim_values(claims.get(policy["role_claim"])) if policy["role_claim"] else (),
        extra={k: claims[k] for k in ("iss", "sub", "email", "name", "amr") if k in claims},
        idp_mfa=amr_has_mfa(claims.get("amr")),
    )


def oidc_complete(*, state: str, code: str, flow: str) -> tuple[SocialApp, dict[str, Any], dict[str, Any]]:
    """Exchange ``code`` at the provider's token endpoint and verify the ID token. Returns the
    app, the verified claims and the stashed state."""
    stashed = oidc_state_take(state=state, flow=flow)
    app = sso_provider_get(stashed["provider"])
    if not isinstance(code, str) or not code or len(code) > 2048:
        raise _refuse("validation_error", "code: this field is required.")
    config = oidc_discovery(app)
    secret = decrypt_text(app.secret) if app.secret else ""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": stashed["redirect_uri"],
        "code_verifier": stashed["code_verifier"],
        "client_id": app.client_id,
    }
    methods = config.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    auth = None
    if "client_secret_post" in methods:
        form["client_secret"] = secret
    else:
        auth = (app.client_id, secret)
    tokens = _http_json(
        "POST", config["token_endpoint"], purpose="OIDC token endpoint", form=form, basic_auth=auth
    )
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise _refuse("sso_id_token_invalid", "The identity provider returned no ID token.", status=401)
    claims = _verify_id_token(app=app, config=config, id_token=id_token, nonce=stashed["nonce"])
    return app, claims, stashed
