"""Two-factor authentication: TOTP and recovery codes (allauth.mfa), email codes (django-otp).

The web pages are allauth's own (``/accounts/2fa/``); the API and the login service use the
functions below, which keep allauth's storage (``Authenticator`` rows, encrypted by
``accounts.mfa_adapter``) so a factor enrolled in one is valid in the other.

Everything short-lived lives in Django's cache, which is the shared Redis with keys namespaced
per tenant schema (django-tenants' ``make_key``): a pending enrolment, the TOTP codes already
used (allauth's own keys), and the count of wrong codes. User ids repeat across tenant schemas;
the namespace keeps them apart, and Redis keeps them consistent across processes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from allauth.mfa import app_settings as mfa_settings
from allauth.mfa import signals as mfa_signals
from allauth.mfa.adapter import get_adapter as get_mfa_adapter
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret, validate_totp_code
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest
from django_otp.plugins.otp_email.models import EmailDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.mfa_adapter import decrypt_text, encrypt_text
from accounts.models import AuditEvent, User
from accounts.services.audit import audit_record
from accounts.services.tokens import RevokeReason, credentials_revoke
from leanvibe import redis as lv_redis
from leanvibe.errors import DomainError

PENDING_SETUP_TIMEOUT = 15 * 60


class MfaMethod:
    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"
    EMAIL = "email"


def _pending_key(user: User) -> str:
    return f"mfa.setup?user={user.pk}"


def _failures_key(user: User) -> str:
    return f"mfa.failures?user={user.pk}"


def totp_used_window() -> int:
    """Seconds a TOTP code stays acceptable: its own step plus the drift allowed either side."""
    return mfa_settings.TOTP_PERIOD * (2 * mfa_settings.TOTP_TOLERANCE + 1)


# --- reads ------------------------------------------------------------------------------------
def user_has_totp(user: User) -> bool:
    return Authenticator.objects.filter(user_id=user.pk, type=Authenticator.Type.TOTP).exists()


def user_mfa_methods(user: User) -> list[str]:
    """The second factors ``user`` can sign in with (empty: no two-factor)."""
    types = set(Authenticator.objects.filter(user_id=user.pk).values_list("type", flat=True).order_by())
    methods = []
    if Authenticator.Type.TOTP in types:
        methods.append(MfaMethod.TOTP)
        if Authenticator.Type.RECOVERY_CODES in types:
            methods.append(MfaMethod.RECOVERY_CODE)
    if EmailDevice.objects.filter(user_id=user.pk, confirmed=True).exists():
        methods.append(MfaMethod.EMAIL)
    return methods


def user_has_mfa(user: User) -> bool:
    return bool(user_mfa_methods(user))


def tenant_requires_mfa(tenant: Any) -> bool:
    return tenant is not None and tenant.typed_settings.require_mfa


def mfa_enrollment_required(*, tenant: Any, user: Any, web: bool = False) -> bool:
    """True when the tenant requires two-factor and this signed-in member has none yet.

    Any second factor counts, on the pages as in the API: the web sign-in challenges email codes
    too (``accounts.login_stages``). ``web`` is kept for callers; it no longer changes the answer."""
    if not tenant_requires_mfa(tenant) or not getattr(user, "is_authenticated", False):
        return False
    return not user_has_mfa(user)


# --- TOTP enrolment ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MfaSetup:
    secret: str
    otpauth_url: str
    qr_code: str
    backup_codes: list[str]


def _recovery_codes_for_seed(seed: str) -> list[str]:
    unsaved = Authenticator(type=Authenticator.Type.RECOVERY_CODES, data={"seed": encrypt_text(seed)})
    return RecoveryCodes(unsaved).generate_codes()


def mfa_setup_begin(*, user: User) -> MfaSetup:
    """Start TOTP enrolment: a new secret and recovery codes, pending until verified.

    The pending secret is kept encrypted in the (tenant-namespaced) cache for 15 minutes; calling
    this again replaces it. Nothing is written to the database before ``mfa_setup_verify``."""
    if user_has_totp(user):
        raise DomainError("mfa_already_enabled", "Two-factor authentication is already enabled.", status=409)
    secret = generate_totp_secret()
    seed = RecoveryCodes.generate_seed()
    cache.set(
        _pending_key(user),
        {"secret": encrypt_text(secret), "seed": encrypt_text(seed)},
        timeout=PENDING_SETUP_TIMEOUT,
    )
    adapter = get_mfa_adapter()
    url = adapter.build_totp_url(user, secret)
    svg = adapter.build_totp_svg(url)
    return MfaSetup(
        secret=secret,
        otpauth_url=url,
        qr_code="data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii"),
        backup_codes=_recovery_codes_for_seed(seed),
    )


def _mark_totp_code_used(user: User, code: str) -> bool:
    """Remember ``code`` as used for ``user`` (allauth's own key); False if it already was."""
    probe = TOTP(Authenticator(user_id=user.pk, type=Authenticator.Type.TOTP, data={}))
    return probe._mark_code_used(code)


def mfa_setup_verify(*, user: User, code: str, request: HttpRequest | None = None) -> None:
    """Activate the pending TOTP secret and its recovery codes once ``code`` matches it."""
    pending = cache.get(_pending_key(user))
    if not pending:
        raise DomainError(
            "mfa_setup_not_started", "Start with POST /api/v1/auth/mfa/setup (or it expired).", status=400
        )
    secret = decrypt_text(pending["secret"])
    if not (validate_totp_code(secret, code) and _mark_totp_code_used(user, code)):
        audit_record(type=AuditEvent.Type.MFA_FAILED, request=request, actor=user, method="totp_setup")
        raise DomainError("invalid_mfa_code", "The code does not match the authenticator.", status=400)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        if user_has_totp(user):
            raise DomainError(
                "mfa_already_enabled", "Two-factor authentication is already enabled.", status=409
            )
        Authenticator.objects.filter(user_id=user.pk, type=Authenticator.Type.RECOVERY_CODES).delete()
        TOTP.activate(user, secret)
        Authenticator.objects.create(
            user=user,
            type=Authenticator.Type.RECOVERY_CODES,
            # The codes were shown at setup: they count as viewed (allauth shows them once).
            data={"seed": pending["seed"], "used_mask": 0, "viewed_at": 0.0},
        )
        audit_record(type=AuditEvent.Type.MFA_ENROLLED, request=request, actor=user, method="totp")
    cache.delete(_pending_key(user))


# --- email codes (django-otp) -----------------------------------------------------------------
def mfa_email_enroll(*, user: User) -> None:
    """Send a code to the user's email; the device counts once ``mfa_email_confirm`` sees it."""
    device = EmailDevice.objects.filter(user_id=user.pk).first()
    if device is not None and device.confirmed:
        raise DomainError("mfa_already_enabled", "Email codes are already enabled.", status=409)
    if device is None:
        device = EmailDevice.objects.create(user=user, name="email", confirmed=False)
    _email_challenge(device)


def mfa_email_confirm(*, user: User, code: str, request: HttpRequest | None = None) -> None:
    device = EmailDevice.objects.filter(user_id=user.pk, confirmed=False).first()
    if device is None:
        raise DomainError(
            "mfa_setup_not_started", "Start with POST /api/v1/auth/mfa/email (or it is enabled).", status=400
        )
    if not device.verify_token(code):
        audit_record(type=AuditEvent.Type.MFA_FAILED, request=request, actor=user, method="email_setup")
        raise DomainError("invalid_mfa_code", "The code is wrong or expired.", status=400)
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    audit_record(type=AuditEvent.Type.MFA_ENROLLED, request=request, actor=user, method="email")


def _email_challenge(device: EmailDevice) -> None:
    generate_allowed, _reason = device.generate_is_allowed()
    if not generate_allowed:
        raise DomainError(
            "rate_limited",
            "A code was sent moments ago: wait a minute before asking for another.",
            status=429,
        )
    device.generate_challenge()


# --- checking a code at sign-in ---------------------------------------------------------------
def _failures_check(user: User) -> None:
    failures = cache.get(_failures_key(user)) or 0
    if failures >= settings.MFA_MAX_FAILURES:
        ttl = lv_redis.client().ttl(cache.make_key(_failures_key(user)))
        raise DomainError(
            "rate_limited",
            "Too many wrong two-factor codes: try again later.",
            status=429,
            retry_after=int(ttl) if ttl and ttl > 0 else settings.MFA_FAILURE_WINDOW,
        )


def _failures_count(user: User) -> None:
    key = _failures_key(user)
    cache.add(key, 0, timeout=settings.MFA_FAILURE_WINDOW)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.MFA_FAILURE_WINDOW)


def _match_code(user: User, code: str) -> tuple[str, Authenticator | None] | None:
    authenticators = {a.type: a for a in Authenticator.objects.filter(user_id=user.pk)}
    totp = authenticators.get(Authenticator.Type.TOTP)
    if totp is not None and totp.wrap().validate_code(code):
        return MfaMethod.TOTP, totp
    device = EmailDevice.objects.filter(user_id=user.pk, confirmed=True).first()
    if device is not None and device.verify_token(code):
        return MfaMethod.EMAIL, None
    recovery = authenticators.get(Authenticator.Type.RECOVERY_CODES)
    if recovery is not None and recovery.wrap().validate_code(code):
        return MfaMethod.RECOVERY_CODE, recovery
    return None


def mfa_check_login(*, user: User, code: str | None, request: HttpRequest | None = None) -> str | None:
    """Second step of an API sign-in for a user whose password matched.

    Returns the method used (None when the user has no two-factor). No code → 422
    ``mfa_required`` listing the methods; a wrong or reused code → 401 ``invalid_mfa_code``;
    too many wrong codes → 429."""
    methods = user_mfa_methods(user)
    if not methods:
        return None
    if not code:
        email_sent = False
        if methods == [MfaMethod.EMAIL]:
            # The only factor is an emailed code: send one now (at most one a minute).
            device = EmailDevice.objects.get(user_id=user.pk, confirmed=True)
            if device.generate_is_allowed()[0]:
                device.generate_challenge()
                email_sent = True
        raise DomainError(
            "mfa_required",
            "This account uses two-factor authentication: send mfa_code with the password.",
            status=422,
            methods=methods,
            email_sent=email_sent,
        )
    _failures_check(user)
    matched = _match_code(user, code.strip())
    if matched is None:
        _failures_count(user)
        audit_record(type=AuditEvent.Type.MFA_FAILED, request=request, actor=user, method="login")
        raise DomainError("invalid_mfa_code", "The two-factor code is wrong or was already used.", status=401)
    method, authenticator = matched
    if authenticator is not None:
        authenticator.record_usage()
    if method == MfaMethod.RECOVERY_CODE:
        audit_record(type=AuditEvent.Type.RECOVERY_CODE_USED, request=request, actor=user)
    cache.delete(_failures_key(user))
    return method


def mfa_check_staff_login(*, user: User, code: str | None, request: HttpRequest | None = None) -> str:
    """Second step of an API sign-in of platform staff (public schema), whose password matched.

    Staff prove themselves with their django-otp TOTP device, the admin console's second
    factor (allauth.mfa has no tables in the public schema). Without a confirmed device there is
    no token at all (403 ``mfa_enrollment_required``: add one in the admin console); no code is
    422 ``mfa_required``; a wrong or replayed code 401 ``invalid_mfa_code``, counted by the same
    ``MFA_MAX_FAILURES`` limit as members' (429 beyond it)."""
    if not TOTPDevice.objects.devices_for_user(user, confirmed=True).exists():
        raise DomainError(
            "mfa_enrollment_required",
            "Platform staff need an authenticator (TOTP) device before using the API: "
            "ask another administrator to add one in the admin console.",
            status=403,
        )
    if not code:
        raise DomainError(
            "mfa_required",
            "Platform staff sign in with two-factor authentication: send mfa_code with the password.",
            status=422,
            methods=[MfaMethod.TOTP],
            email_sent=False,
        )
    _failures_check(user)
    with transaction.atomic():
        # Locked rows: two requests with one code cannot both pass django-otp's
        # replay check; its own per-device throttle is recorded either way.
        devices = TOTPDevice.objects.devices_for_user(user, confirmed=True).select_for_update()
        matched = any(device.verify_token(code.strip()) for device in devices)
    if not matched:
        _failures_count(user)
        audit_record(type=AuditEvent.Type.MFA_FAILED, request=request, actor=user, method="login")
        raise DomainError("invalid_mfa_code", "The two-factor code is wrong or was already used.", status=401)
    cache.delete(_failures_key(user))
    return MfaMethod.TOTP


# --- email codes at the web sign-in (accounts.login_stages) ------------------------------------
def user_email_device(user: User) -> EmailDevice | None:
    return EmailDevice.objects.filter(user_id=user.pk, confirmed=True).first()


def mfa_email_login_send(*, user: User) -> bool:
    """Email a sign-in code to ``user`` unless one went out less than a minute ago (False)."""
    device = user_email_device(user)
    if device is None or not device.generate_is_allowed()[0]:
        return False
    device.generate_challenge()
    return True


def mfa_email_login_check(*, user: User, code: str, request: HttpRequest | None = None) -> None:
    """Check an emailed code at the web sign-in: single use, counted like the API's wrong codes
    (429 ``rate_limited`` after too many), audited as ``mfa_failed``."""
    _failures_check(user)
    device = user_email_device(user)
    if device is not None and not device.verify_is_allowed()[0]:
        # django-otp's own back-off after a wrong code (a doubling delay of seconds).
        raise DomainError(
            "rate_limited", "Wrong code just now: wait a few seconds and try again.", status=429
        )
    if device is None or not device.verify_token(code.strip()):
        _failures_count(user)
        audit_record(type=AuditEvent.Type.MFA_FAILED, request=request, actor=user, method="login", via="web")
        raise DomainError("invalid_mfa_code", "The code is wrong, expired or was already used.", status=401)
    cache.delete(_failures_key(user))


# --- removal ----------------------------------------------------------------------------------
def mfa_remove(*, user: User, code: str, request: HttpRequest | None = None) -> None:
    """Remove every second factor of ``user`` after checking a current code."""
    if not user_has_mfa(user):
        raise DomainError("mfa_not_enabled", "Two-factor authentication is not enabled.", status=404)
    _failures_check(user)
    if _match_code(user, code.strip()) is None:
        _failures_count(user)
        audit_record(type=AuditEvent.Type.MFA_FAILED, request=request, actor=user, method="remove")
        raise DomainError("invalid_mfa_code", "The two-factor code is wrong or was already used.", status=401)
    with transaction.atomic():
        Authenticator.objects.filter(user_id=user.pk).delete()
        EmailDevice.objects.filter(user_id=user.pk).delete()
        audit_record(type=AuditEvent.Type.MFA_REMOVED, request=request, actor=user)
        # Whoever got in while the factor protected the account is cut off: every API token
        # (the caller's too) and every web session.
        credentials_revoke(user=user, reason=RevokeReason.MFA_REMOVED, request=request)


# --- the web pages (allauth's views) record the same audit events -----------------------------
@receiver(mfa_signals.authenticator_added)
def _audit_web_enrolment(
    sender: Any, request: HttpRequest, user: User, authenticator: Any, **kw: Any
) -> None:
    if authenticator.type == Authenticator.Type.TOTP:
        audit_record(type=AuditEvent.Type.MFA_ENROLLED, request=request, actor=user, method="totp", via="web")


@receiver(mfa_signals.authenticator_removed)
def _audit_web_removal(sender: Any, request: HttpRequest, user: User, authenticator: Any, **kw: Any) -> None:
    if authenticator.type == Authenticator.Type.TOTP:
        audit_record(type=AuditEvent.Type.MFA_REMOVED, request=request, actor=user, via="web")
        # As for the API's removal, but the browser that removed the factor keeps its session.
        credentials_revoke(
            user=user,
            reason=RevokeReason.MFA_REMOVED,
            keep_session_key=request.session.session_key,
            request=request,
        )


@receiver(mfa_signals.authenticator_used)
def _audit_web_recovery_code(
    sender: Any, request: HttpRequest, user: User, authenticator: Any, **kw: Any
) -> None:
    if authenticator.type == Authenticator.Type.RECOVERY_CODES:
        audit_record(type=AuditEvent.Type.RECOVERY_CODE_USED, request=request, actor=user, via="web")


@receiver(mfa_signals.authentication_failed)
def _audit_web_failure(sender: Any, request: HttpRequest, user: User, **kw: Any) -> None:
    audit_record(type=AuditEvent.Type.MFA_FAILED, request=request, actor=user, via="web")
