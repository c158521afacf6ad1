"""Password changes and resets. Each one cuts the account's other ways in at once
(``accounts.services.tokens.credentials_revoke``): every API token and refresh chain, and every
web session but the one that made a change (a reset keeps none).

The API's ``POST /api/v1/auth/password`` calls ``password_change``; allauth's pages
(``/accounts/password/change/``, ``/accounts/password/set/``, ``/accounts/password/reset/...``)
reach the same revocation through allauth's ``password_changed``, ``password_set`` and
``password_reset`` signals, received below.
"""

from __future__ import annotations

from typing import Any

from allauth.account import signals as account_signals
from django.contrib.auth import logout
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.models import AuditEvent, User
from accounts.services import throttle
from accounts.services.audit import audit_record
from accounts.services.tokens import RevokeReason, credentials_revoke
from leanvibe.errors import DomainError


def _locked(locked: throttle.LoginLocked) -> DomainError:
    return DomainError("rate_limited", locked.detail, status=429, retry_after=locked.retry_after)


def password_change(
    *, user: User, current_password: str, new_password: str, ip: str, request: HttpRequest | None = None
) -> None:
    """Change ``user``'s password after checking the current one, then revoke every API token
    (the caller's too: it signs in again) and end every web session.

    A wrong current password counts toward the sign-in lock of the account and of ``ip``
    (someone holding a stolen token must not get unlimited guesses), is audited as a failed
    sign-in, and is a 400 ``invalid_current_password``; while locked, 429 ``rate_limited``.
    A new password that Django's validators refuse is a 400 ``validation_error`` on
    ``new_password``."""
    try:
        throttle.login_attempt_guard(email=user.email, ip=ip)
    except throttle.LoginLocked as locked:
        raise _locked(locked) from None
    if not user.check_password(current_password):
        audit_record(type=AuditEvent.Type.LOGIN_FAILED, request=request, actor=user, method="password_change")
        try:
            throttle.login_failure_record(email=user.email, ip=ip)
        except throttle.LoginLocked as locked:
            raise _locked(locked) from None
        raise DomainError("invalid_current_password", "The current password is incorrect.", status=400)
    try:
        validate_password(new_password, user)
    except ValidationError as exc:
        raise ValidationError({"new_password": exc.messages}) from exc
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        audit_record(type=AuditEvent.Type.PASSWORD_CHANGED, request=request, actor=user, via="api")
        credentials_revoke(user=user, reason=RevokeReason.PASSWORD_CHANGED, request=request)


def password_changed_record(
    *,
    user: User,
    via: str,
    actor: User | None = None,
    keep_session_key: str | None = None,
    request: HttpRequest | None = None,
) -> None:
    """A page has just changed ``user``'s password (allauth's, or the admin console's, ``via``):
    audit it and cut off every other way in (``keep_session_key``: the browser that made the
    change, when it was the account's own)."""
    with transaction.atomic():
        audit_record(
            type=AuditEvent.Type.PASSWORD_CHANGED,
            request=request,
            actor=actor or user,
            target_user=user,
            via=via,
        )
        credentials_revoke(
            user=user,
            reason=RevokeReason.PASSWORD_CHANGED,
            keep_session_key=keep_session_key,
            actor=actor,
            request=request,
        )


# --- allauth's pages ----------------------------------------------------------------------------
@receiver(account_signals.password_changed, dispatch_uid="accounts.passwords.changed")
@receiver(account_signals.password_set, dispatch_uid="accounts.passwords.set")
def _on_password_changed(sender: Any, request: HttpRequest, user: User, **kw: Any) -> None:
    # allauth has already given this browser a new session key (update_session_auth_hash): it
    # is the one session that survives.
    password_changed_record(
        user=user, via="web", keep_session_key=request.session.session_key, request=request
    )


@receiver(account_signals.password_reset, dispatch_uid="accounts.passwords.reset")
def _on_password_reset(sender: Any, request: HttpRequest, user: User, **kw: Any) -> None:
    if request.user.is_authenticated and request.user.pk == user.pk:
        # Whoever reset the password signs in again with it, in this browser too. Logging out
        # first gives this request a fresh session instead of one deleted under its feet.
        logout(request)
    audit_record(type=AuditEvent.Type.PASSWORD_RESET, request=request, actor=user, via="web")
    credentials_revoke(user=user, reason=RevokeReason.PASSWORD_RESET, request=request)
