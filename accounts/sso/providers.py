"""A tenant's identity providers: reading them (with the values to give the IdP), their
policy (allowed email domains, name and role claims, role mapping), and the owners' changes,
each audited and emailed to every owner. Saving a provider does its network part (checking the
OIDC ``server_url``, fetching the SAML metadata) before its transaction opens."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from allauth.socialaccount.models import SocialAccount, SocialApp
from django.db import transaction
from django.http import HttpRequest

from accounts.mfa_adapter import encrypt_text
from accounts.models import AuditEvent, Role
from accounts.services.audit import audit_record
from accounts.services.notify import owners_notify_security_change
from accounts.sso.common import (
    KIND_FOR_PROVIDER,
    OIDC,
    PROVIDER_FOR_KIND,
    SAML,
    check_url,
    refuse,
    request_actor,
)
from accounts.sso.saml import (
    DEFAULT_SAML_ATTRIBUTE_MAPPING,
    saml_advanced_settings,
    saml_idp_from_metadata,
    saml_metadata_fetch,
)
from accounts.sso.urls import saml_sp_urls, sso_urls
from leanvibe.outbound import OutboundError, OutboundRefused, outbound_url_check

if TYPE_CHECKING:
    from tenants.models import Tenant

_P = ParamSpec("_P")
_R = TypeVar("_R")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
# Roles an identity provider may grant: never owner (owners are made inside LeanVibe).
MAPPABLE_ROLES = {Role.ADMIN.value, Role.MEMBER.value}


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
        raise refuse("sso_provider_not_found", "No single sign-on provider with this id.", status=404)
    return app


def policy_of(app: SocialApp) -> dict[str, Any]:
    policy: dict[str, Any] = dict(app.settings.get("leanvibe") or {})
    policy.setdefault("allowed_domains", [])
    policy.setdefault("role_mapping", {})
    policy.setdefault("name_claim", "name")
    policy.setdefault("role_claim", "")
    return policy


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


def _clean_domains(domains: list[str] | None) -> list[str]:
    cleaned = []
    for domain in domains or []:
        d = str(domain).strip().lower().lstrip("@")
        if not re.match(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$", d):
            raise refuse("validation_error", f"allowed_domains: “{domain}” is not a domain name.")
        cleaned.append(d)
    return sorted(set(cleaned))


def _clean_role_mapping(mapping: dict[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for value, role in (mapping or {}).items():
        if role not in MAPPABLE_ROLES:
            raise refuse("validation_error", "role_mapping: roles may only be “admin” or “member”.")
        out[str(value)] = role
    return out


def _fetch_before_transaction(*, provider: str, data: ProviderInput) -> ProviderInput:
    """The network part of saving a provider, done before its transaction opens: a slow
    identity provider holds no row lock, and the audit of a refused URL is not rolled back with
    the refused change. The OIDC ``server_url`` is checked against the outbound rules (resolved
    unless private addresses are allowed; it is fetched, and checked again, at each sign-in);
    the SAML ``metadata_url`` is fetched through the guard and its document used as the XML."""
    if provider == OIDC and data.server_url and data.server_url.strip():
        url = check_url(data.server_url.strip(), "server_url")
        try:
            outbound_url_check(url=url, purpose="OIDC server_url")
        except OutboundRefused:
            raise
        except OutboundError as exc:
            raise refuse("validation_error", f"server_url: {exc.reason}.") from exc
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
            raise refuse("validation_error", "name: 1 to 40 characters.")
        app.name = data.name.strip()
    if app.provider == OIDC:
        if data.server_url is not None:
            settings_["server_url"] = check_url(data.server_url.strip(), "server_url")
        if data.client_id is not None:
            if not data.client_id.strip():
                raise refuse("validation_error", "client_id: this field is required.")
            app.client_id = data.client_id.strip()
        if data.client_secret is not None:
            app.secret = encrypt_text(data.client_secret) if data.client_secret else ""
        settings_["oauth_pkce_enabled"] = True
        if creating and not (settings_.get("server_url") and app.client_id):
            raise refuse("validation_error", "server_url and client_id are required for OpenID Connect.")
    else:
        if data.metadata_xml or data.metadata_url:
            settings_["idp"] = saml_idp_from_metadata(
                metadata_xml=data.metadata_xml or "",
                metadata_url=data.metadata_url or "",
                entity_id=data.entity_id or "",
            )
            policy["metadata_url"] = data.metadata_url or ""
        elif creating:
            raise refuse("validation_error", "metadata_xml or metadata_url is required for SAML.")
        if data.attribute_mapping is not None:
            mapping: dict[str, list[str]] = {}
            for key, names in data.attribute_mapping.items():
                if key not in ("uid", "email", "name", "role", "first_name", "last_name"):
                    raise refuse("validation_error", f"attribute_mapping: unknown key “{key}”.")
                mapping[key] = [names] if isinstance(names, str) else [str(n) for n in names]
            settings_["attribute_mapping"] = {**DEFAULT_SAML_ATTRIBUTE_MAPPING, **mapping}
        settings_.setdefault("attribute_mapping", DEFAULT_SAML_ATTRIBUTE_MAPPING)
        allow = data.allow_idp_initiated
        if allow is None:
            allow = not settings_.get("advanced", {}).get("reject_idp_initiated_sso", True)
        settings_["advanced"] = saml_advanced_settings(allow_idp_initiated=allow)
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


def _provider_change_record(
    *, tenant: Tenant, request: HttpRequest | None, type: str, change: str, **data: Any
) -> None:
    """Every provider change is audited and emailed (after commit) to every owner."""
    audit_record(type=type, request=request, **data)
    actor = request_actor(request)
    owners_notify_security_change(tenant=tenant, actor_email=actor.email if actor else "", change=change)


@_network_before_transaction
@transaction.atomic
def sso_provider_create(
    *, tenant: Tenant, kind: str, data: ProviderInput, request: HttpRequest | None = None
) -> SocialApp:
    """Add an identity provider (an owner's action: the view checks the role). Audited, and
    every owner is emailed."""
    if kind not in PROVIDER_FOR_KIND:
        raise refuse("validation_error", "type: choose “oidc” or “saml”.")
    if not data.name or not data.name.strip():
        raise refuse("validation_error", "name: this field is required.")
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
    _provider_change_record(
        tenant=tenant,
        request=request,
        type=AuditEvent.Type.SSO_PROVIDER_ADDED,
        change=f"Identity provider “{app.name}” ({KIND_FOR_PROVIDER[app.provider].upper()}) was added.",
        provider=app.provider_id,
        kind=kind,
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
    _provider_change_record(
        tenant=tenant,
        request=request,
        type=AuditEvent.Type.SSO_PROVIDER_CHANGED,
        change=f"Identity provider “{app.name}” was changed ({', '.join(fields) or 'no fields'}).",
        provider=app.provider_id,
        fields=fields,
    )
    return app


@transaction.atomic
def sso_provider_delete(*, tenant: Tenant, app: SocialApp, request: HttpRequest | None = None) -> None:
    slug = app.provider_id
    SocialAccount.objects.filter(provider=slug).delete()
    app.delete()
    _provider_change_record(
        tenant=tenant,
        request=request,
        type=AuditEvent.Type.SSO_PROVIDER_REMOVED,
        change=f"Identity provider “{app.name}” was removed.",
        provider=slug,
    )
