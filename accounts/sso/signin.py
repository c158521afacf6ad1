"""Who a single sign-on signs in as, and what that person must still prove.

An identity provider is configured by the tenant's owners, and an owner's IdP can assert any
email it likes. So an assertion alone never opens an existing account:

1. The account that already linked this provider's identity (provider + subject) signs in.
2. Otherwise, if an account of this tenant owns the asserted email (a verified address of it,
   or its primary address), nothing is linked yet: ``SsoLinkRequired`` (409
   ``sso_link_required``) and nothing is created. The person proves the account once, with its
   password and its second factor (``sso_link_confirm``); from then on step 1 applies.
   An *unverified* secondary address never matches anything.
3. Otherwise a new member is created just in time (within the plan's user limit).

Then the second factor: an account with one must give it after the IdP (the API answers 422
``mfa_required`` with an ``mfa_token`` to continue with; the pages go through allauth's MFA
stage), unless the tenant trusts its IdP's MFA (``trust_idp_mfa``) and the IdP asserted it
(OIDC ``amr`` with ``mfa``/``otp``/``hwk``; SAML a multi-factor AuthnContextClassRef).

A sign-in waiting for a link or a second factor is kept server-side (the tenant-namespaced
cache) under a random token for ``SSO_PENDING_TTL`` seconds; it is used once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from accounts.emails import email_canonical
from accounts.models import AuditEvent, Role, User
from accounts.services import member_add, throttle
from accounts.services.audit import audit_record
from accounts.services.mfa import mfa_check_login, user_mfa_methods
from accounts.sso.settings import trust_idp_mfa_enabled
from leanvibe.errors import DomainError
from leanvibe.validators import strip_control_characters

if TYPE_CHECKING:
    from tenants.models import Tenant


@dataclass(frozen=True)
class SsoIdentity:
    uid: str
    email: str
    email_verified: bool
    name: str = ""
    role_values: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # The IdP says the person gave a second factor there (amr / AuthnContextClassRef).
    idp_mfa: bool = False

    def __post_init__(self) -> None:
        # The IdP controls the display name: line breaks and other control characters are
        # stripped (not refused) before it can become a member's name and reach email headers.
        object.__setattr__(self, "name", strip_control_characters(self.name))
        # PostgreSQL cannot store NUL in text or JSON: the raw claims kept as extra_data lose it,
        # and so does the subject.
        object.__setattr__(self, "uid", self.uid.replace("\x00", ""))
        extra = {k: v.replace("\x00", "") if isinstance(v, str) else v for k, v in self.extra.items()}
        object.__setattr__(self, "extra", extra)


class SsoLinkRequired(DomainError):
    """An account owns the asserted email but has not linked this identity yet."""

    def __init__(self, *, user: User) -> None:
        super().__init__(
            "sso_link_required",
            "An account with this email address already exists here. Sign in to it once with its "
            "password (and second factor) to link your identity provider to it.",
            status=409,
        )
        self.user = user


# --- who signs in --------------------------------------------------------------------------------
def audit_sso_refused(*, request: HttpRequest | None, provider: str, reason: str, email: str = "") -> None:
    audit_record(
        type=AuditEvent.Type.SSO_LOGIN_REFUSED,
        request=request,
        actor_email=email[:254],
        provider=provider,
        reason=reason[:300],
    )


def policy_allowed_domains(app: SocialApp) -> list[str]:
    return list((app.settings.get("leanvibe") or {}).get("allowed_domains") or [])


def identity_role(app: SocialApp, identity: SsoIdentity) -> str:
    mapping = (app.settings.get("leanvibe") or {}).get("role_mapping") or {}
    roles = {mapping[v] for v in identity.role_values if v in mapping}
    return Role.ADMIN if Role.ADMIN in roles else Role.MEMBER


def _check_domain(app: SocialApp, email: str) -> None:
    allowed = policy_allowed_domains(app)
    domain = email.rpartition("@")[2]
    if allowed and domain not in allowed:
        raise DomainError(
            "sso_domain_not_allowed",
            f"Sign-in refused: {domain} is not an email domain this organisation accepts.",
            status=403,
        )


def _usable_email(identity: SsoIdentity) -> str:
    email = email_canonical(identity.email)
    try:
        validate_email(email)
    except ValidationError as exc:
        raise DomainError(
            "sso_email_missing", "The identity provider sent no usable email address.", status=403
        ) from exc
    if not identity.email_verified:
        raise DomainError(
            "sso_email_unverified", "The identity provider did not vouch for this email address.", status=403
        )
    return email


def _account_owning(email: str) -> User | None:
    """The account this email belongs to: its primary address (``User.email``, verified or not:
    a second account cannot take it) or one of its verified addresses. Unverified secondary
    addresses belong to nobody."""
    user = User.objects.filter(email=email).first()
    if user is not None:
        return user
    address = EmailAddress.objects.filter(email=email, verified=True).select_related("user").first()
    return address.user if address is not None else None  # type: ignore[return-value]


def _linked_user(app: SocialApp, identity: SsoIdentity) -> User | None:
    linked = (
        SocialAccount.objects.select_related("user")
        .filter(provider=app.provider_id, uid=identity.uid[:191])
        .first()
    )
    if linked is None:
        return None
    if not linked.user.is_active:
        raise DomainError("account_inactive", "This account is deactivated.", status=403)
    return linked.user  # type: ignore[return-value]


def sso_user_resolve(
    *, tenant: Tenant, app: SocialApp, identity: SsoIdentity, request: HttpRequest | None = None
) -> User:
    """The member an SSO identity signs in as (see the module's docstring). Raises
    ``SsoLinkRequired`` for an existing, unlinked account; creates a member for a new person."""
    linked = _linked_user(app, identity)
    if linked is not None:
        return linked
    email = _usable_email(identity)
    _check_domain(app, email)
    with transaction.atomic():
        existing = _account_owning(email)
        if existing is None:
            user = member_add(tenant=tenant, email=email, password=None, role=identity_role(app, identity))
            if identity.name:
                user.full_name = identity.name[:200]
                user.save(update_fields=["full_name"])
            SocialAccount.objects.create(
                user=user, provider=app.provider_id, uid=identity.uid[:191], extra_data=identity.extra
            )
            EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
            audit_record(
                type=AuditEvent.Type.MEMBER_ADDED,
                request=request,
                actor=user,
                target_user=user,
                via="sso",
                provider=app.provider_id,
                role=user.role,
            )
            return user
    if not existing.is_active:
        raise DomainError("account_inactive", "This account is deactivated.", status=403)
    audit_record(
        type=AuditEvent.Type.SSO_LINK_REQUIRED,
        request=request,
        actor=existing,
        target_user=existing,
        provider=app.provider_id,
    )
    raise SsoLinkRequired(user=existing)


def sso_identity_link(
    *, user: User, app: SocialApp, identity: SsoIdentity, request: HttpRequest | None = None
) -> None:
    """Link ``identity`` to ``user`` (who has just proven the account) and record it."""
    already = DomainError("sso_already_linked", "This identity is already linked to an account.", status=409)
    try:
        with transaction.atomic():
            if SocialAccount.objects.filter(provider=app.provider_id, uid=identity.uid[:191]).exists():
                raise already
            SocialAccount.objects.create(
                user=user, provider=app.provider_id, uid=identity.uid[:191], extra_data=identity.extra
            )
            email = email_canonical(identity.email)
            taken = EmailAddress.objects.filter(email=email, verified=True).exclude(user=user).exists()
            if identity.email_verified and email and not taken:
                # The IdP vouches for it: the address is now verified for this account.
                EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True})
            audit_record(
                type=AuditEvent.Type.SSO_LINKED,
                request=request,
                actor=user,
                target_user=user,
                provider=app.provider_id,
            )
    except IntegrityError as exc:  # a concurrent link of the same identity won
        raise already from exc


# --- sign-ins waiting for a link or a second factor ----------------------------------------------
class Pending:
    LINK = "link"
    MFA = "mfa"


@dataclass(frozen=True)
class PendingSignIn:
    purpose: str
    provider: str
    user_id: int
    identity: SsoIdentity
    next_url: str = ""


def _pending_key(token: str) -> str:
    return "sso:pending:" + hashlib.sha256(token.encode()).hexdigest()


def sso_pending_stash(
    *, purpose: str, app: SocialApp, user: User, identity: SsoIdentity, next_url: str = ""
) -> str:
    """Keep a sign-in that waits for the person (link or second factor); returns its token."""
    token = secrets.token_urlsafe(32)
    data = {
        "purpose": purpose,
        "provider": app.provider_id,
        "user_id": user.pk,
        "identity": {**asdict(identity), "role_values": list(identity.role_values)},
        "next_url": next_url,
    }
    cache.set(_pending_key(token), data, settings.SSO_PENDING_TTL)
    return token


def _invalid_pending(purpose: str) -> DomainError:
    field_name = "link_token" if purpose == Pending.LINK else "mfa_token"
    return DomainError(
        "sso_pending_invalid",
        f"{field_name} is unknown, expired or already used: sign in with the identity provider again.",
        status=400,
    )


def sso_pending_peek(*, token: str, purpose: str) -> PendingSignIn:
    data = cache.get(_pending_key(token)) if isinstance(token, str) and 20 <= len(token) <= 200 else None
    if not isinstance(data, dict) or data.get("purpose") != purpose:
        raise _invalid_pending(purpose)
    identity = dict(data["identity"])
    identity["role_values"] = tuple(identity.get("role_values") or ())
    return PendingSignIn(
        purpose=purpose,
        provider=data["provider"],
        user_id=int(data["user_id"]),
        identity=SsoIdentity(**identity),
        next_url=str(data.get("next_url") or ""),
    )


def sso_pending_take(*, token: str, purpose: str) -> PendingSignIn:
    """Consume a pending sign-in once: of two concurrent uses only one gets it."""
    pending = sso_pending_peek(token=token, purpose=purpose)
    if not cache.delete(_pending_key(token)):
        raise _invalid_pending(purpose)
    return pending


def _pending_user(pending: PendingSignIn) -> User:
    user = User.objects.filter(pk=pending.user_id, is_active=True).first()
    if user is None:
        raise _invalid_pending(pending.purpose)
    return user


# --- the second factor --------------------------------------------------------------------------
def sso_second_factor_required(*, tenant: Tenant | None, user: User, identity: SsoIdentity) -> bool:
    if not user_mfa_methods(user):
        return False
    return not (trust_idp_mfa_enabled(tenant) and identity.idp_mfa)


def sso_mfa_challenge(*, tenant: Tenant | None, app: SocialApp, user: User, identity: SsoIdentity) -> None:
    """For an API sign-in: nothing when no second factor is due, else 422 ``mfa_required``
    with the methods and an ``mfa_token`` to send back with the code."""
    if not sso_second_factor_required(tenant=tenant, user=user, identity=identity):
        return
    try:
        mfa_check_login(user=user, code=None)  # raises 422 with the methods (and emails a code)
    except DomainError as exc:
        token = sso_pending_stash(purpose=Pending.MFA, app=app, user=user, identity=identity)
        raise DomainError(
            exc.code,
            "This account uses two-factor authentication: send mfa_token and mfa_code to "
            "/api/v1/auth/sso/callback.",
            status=exc.status,
            **exc.extra,
            mfa_token=token,
            expires_in=settings.SSO_PENDING_TTL,
        ) from None


def sso_mfa_complete(
    *, token: str, code: str, request: HttpRequest | None = None
) -> tuple[User, PendingSignIn, str | None]:
    """The second factor of an API SSO sign-in; returns the user, the pending sign-in and the
    method. A wrong code leaves the token usable (the MFA failure limit applies)."""
    pending = sso_pending_peek(token=token, purpose=Pending.MFA)
    user = _pending_user(pending)
    method = mfa_check_login(user=user, code=code, request=request)
    sso_pending_take(token=token, purpose=Pending.MFA)
    return user, pending, method


# --- proving an existing account once -------------------------------------------------------------
def sso_link_confirm(
    *,
    token: str,
    password: str,
    mfa_code: str | None,
    ip: str,
    request: HttpRequest | None = None,
) -> tuple[User, PendingSignIn]:
    """Link a pending SSO identity to the account it matched, once its holder gives the
    account's password and (if it has one) its second factor. Wrong passwords count toward
    the account's sign-in lock like any other sign-in (``throttle.LoginLocked``)."""
    pending = sso_pending_peek(token=token, purpose=Pending.LINK)
    user = _pending_user(pending)
    throttle.login_attempt_guard(email=user.email, ip=ip)
    if not user.check_password(password):
        audit_record(
            type=AuditEvent.Type.LOGIN_FAILED,
            request=request,
            actor_email=user.email,
            method="sso_link",
            provider=pending.provider,
        )
        throttle.login_failure_record(email=user.email, ip=ip)
        raise DomainError("invalid_credentials", "The password is incorrect.", status=401)
    mfa_check_login(user=user, code=mfa_code, request=request)
    sso_pending_take(token=token, purpose=Pending.LINK)
    throttle.login_success_reset(email=user.email)
    app = SocialApp.objects.get(provider_id=pending.provider)
    sso_identity_link(user=user, app=app, identity=pending.identity, request=request)
    return user, pending
