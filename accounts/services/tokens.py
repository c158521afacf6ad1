"""API token rotation and revocation, and a member's sessions (web and API).

A sign-in through the API mints a *family*: one access token and one refresh token sharing a
``family`` id. ``tokens_refresh`` exchanges a refresh token once for a new pair in the same
family and marks it ``rotated_at``; presenting a rotated refresh token again means it was
copied, so the whole family (every access and refresh token of it) is revoked.

The last activity of a family is kept in the cache (shared Redis, namespaced per tenant schema)
by ``BearerTokenAuthentication``: a cache write, not a database query, so token
authentication stays one query per request. Web sessions are allauth's ``UserSession`` rows
(``USERSESSIONS_TRACK_ACTIVITY`` keeps their ``last_seen_at``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from allauth.usersessions.models import UserSession
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from accounts.models import AuditEvent, AuthToken, User
from accounts.services import IssuedTokens, token_hash, tokens_issue
from accounts.services.audit import audit_record
from leanvibe.errors import DomainError
from leanvibe.parsing import parse_id, parse_uuid
from tenants.token_scope import token_fits_connection


class SessionKind:
    WEB = "web"
    API = "api"


# --- last activity ---------------------------------------------------------------------------
def _activity_key(family: uuid.UUID | str) -> str:
    return f"token.activity?family={family}"


def token_activity_touch(token: AuthToken) -> None:
    """Remember that ``token``'s family was used now (one cache write, no query)."""
    cache.set(
        _activity_key(token.family), timezone.now().timestamp(), timeout=settings.REFRESH_TOKEN_LIFETIME
    )


def token_activities(families: list[uuid.UUID]) -> dict[str, datetime]:
    """The last activity of each token family seen within the refresh lifetime (from the cache)."""
    found = cache.get_many([_activity_key(f) for f in families])
    out: dict[str, datetime] = {}
    for family in families:
        value = found.get(_activity_key(family))
        if isinstance(value, int | float):
            out[str(family)] = datetime.fromtimestamp(value, tz=timezone.get_current_timezone())
    return out


# --- rotation and revocation -----------------------------------------------------------------
def token_family_revoke(*, family: uuid.UUID) -> int:
    """Revoke every still-valid token of ``family``; returns how many."""
    return AuthToken.objects.filter(family=family, revoked_at__isnull=True).update(revoked_at=timezone.now())


def _invalid_refresh() -> DomainError:
    return DomainError("invalid_refresh_token", "The refresh token is invalid or expired.", status=401)


def tokens_refresh(*, refresh_token: str, request: HttpRequest | None = None) -> IssuedTokens:
    """Exchange a refresh token for a new access and refresh token of the same family.

    Raises 401 ``invalid_refresh_token`` for an unknown, expired or revoked token (or a
    deactivated user), and 401 ``refresh_token_reused`` after revoking the whole family when
    the token was already exchanged once."""
    if not token_fits_connection(refresh_token):  # its prefix names another tenant
        raise _invalid_refresh()
    reused = False
    with transaction.atomic():
        # Locked: two concurrent exchanges of one token cannot both succeed.
        token = (
            AuthToken.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(token_hash=token_hash(refresh_token), kind=AuthToken.Kind.REFRESH)
            .first()
        )
        if token is None:
            raise _invalid_refresh()
        if token.rotated_at is not None:
            revoked = token_family_revoke(family=token.family)
            audit_record(
                type=AuditEvent.Type.TOKEN_REUSE_DETECTED,
                request=request,
                actor=token.user,
                target_user=token.user,
                family=str(token.family),
                tokens_revoked=revoked,
            )
            reused = True
        elif not token.is_usable or not token.user.is_active:
            raise _invalid_refresh()
        else:
            token.rotated_at = timezone.now()
            token.save(update_fields=["rotated_at"])
            issued = tokens_issue(
                user=token.user, request=request, family=token.family, refresh_not_after=token.expires_at
            )
            audit_record(
                type=AuditEvent.Type.TOKEN_REFRESHED,
                request=request,
                actor=token.user,
                family=str(token.family),
            )
    if reused:  # raised after the commit: the revocation must stick
        raise DomainError(
            "refresh_token_reused",
            "This refresh token was already used: every token of its session has been revoked. "
            "Sign in again.",
            status=401,
        )
    return issued


def tokens_logout(*, token: AuthToken, request: HttpRequest | None = None) -> None:
    """Sign out an API client: revoke the family of the access token it used."""
    with transaction.atomic():
        token_family_revoke(family=token.family)
        audit_record(
            type=AuditEvent.Type.LOGOUT,
            request=request,
            actor=token.user,
            kind=SessionKind.API,
            family=str(token.family),
        )


# --- sessions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionInfo:
    id: str
    kind: str
    ip_address: str | None
    user_agent: str
    created_at: datetime
    last_activity: datetime
    current: bool


def sessions_list(
    *, user: User, current_session_key: str | None = None, current_family: uuid.UUID | None = None
) -> list[SessionInfo]:
    """``user``'s live web sessions and API token families, most recently active first."""
    out = [
        SessionInfo(
            id=str(session.pk),
            kind=SessionKind.WEB,
            ip_address=session.ip,
            user_agent=session.user_agent,
            created_at=session.created_at,
            last_activity=session.last_seen_at,
            current=bool(current_session_key) and session.session_key == current_session_key,
        )
        for session in UserSession.objects.purge_and_list(user)
    ]
    now = timezone.now()
    families: dict[uuid.UUID, list[AuthToken]] = {}
    for token in AuthToken.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=now).order_by(
        "created_at"
    ):
        families.setdefault(token.family, []).append(token)
    # A family is alive while it has a usable access token or an unexchanged refresh token.
    alive = {
        family: tokens
        for family, tokens in families.items()
        if any(t.kind == AuthToken.Kind.ACCESS or t.rotated_at is None for t in tokens)
    }
    activity = token_activities(list(alive))
    for family, tokens in alive.items():
        latest = tokens[-1]
        out.append(
            SessionInfo(
                id=str(family),
                kind=SessionKind.API,
                ip_address=latest.ip_address,
                user_agent=latest.user_agent,
                created_at=tokens[0].created_at,
                last_activity=max(activity.get(str(family), latest.created_at), latest.created_at),
                current=family == current_family,
            )
        )
    out.sort(key=lambda s: s.last_activity, reverse=True)
    return out


def _session_not_found() -> DomainError:
    return DomainError("not_found", "Session not found.", status=404)


def session_end(*, user: User, session_id: str, actor: User, request: HttpRequest | None = None) -> str:
    """End one of ``user``'s sessions by the id ``sessions_list`` gave it: a web session is
    deleted from the session store (its cookie stops working), an API session's token family
    is revoked. Returns the kind ended; 404 if ``user`` has no such live session."""
    kind: str
    with transaction.atomic():
        family = parse_uuid(session_id)
        if family is not None:
            revoked = AuthToken.objects.filter(
                user=user, family=family, revoked_at__isnull=True, expires_at__gt=timezone.now()
            ).update(revoked_at=timezone.now())
            if not revoked:
                raise _session_not_found()
            kind = SessionKind.API
        else:
            web_id = parse_id(session_id)
            session = UserSession.objects.filter(user=user, pk=web_id).first() if web_id else None
            if session is None:
                raise _session_not_found()
            session.end()
            kind = SessionKind.WEB
        audit_record(
            type=AuditEvent.Type.SESSION_ENDED,
            request=request,
            actor=actor,
            target_user=user,
            kind=kind,
            session=session_id,
        )
    return kind


class RevokeReason:
    """Why ``credentials_revoke`` ran (``reason`` of the ``credentials.revoked`` audit event)."""

    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason code, not a secret
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a reason code, not a secret
    MFA_REMOVED = "mfa_removed"
    MEMBER_DEACTIVATED = "member_deactivated"


def _cut_off(*, user: User, keep_session_key: str | None = None) -> tuple[int, int]:
    """Revoke every still-valid API token of ``user`` and end their web sessions but
    ``keep_session_key``; returns (tokens revoked, web sessions ended)."""
    tokens = AuthToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    web = 0
    # allauth's user sessions exist in tenant schemas only (platform staff have none tracked).
    if connection.schema_name != get_public_schema_name():  # type: ignore[attr-defined]
        for session in UserSession.objects.filter(user=user).exclude(session_key=keep_session_key or ""):
            session.end()
            web += 1
    return tokens, web


def credentials_revoke(
    *,
    user: User,
    reason: str,
    keep_session_key: str | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> dict[str, int]:
    """Revoke every API token (every refresh chain) of ``user`` and end every web session but
    ``keep_session_key`` (the browser that made a password change keeps its session; a reset, a
    deactivation or an API call keeps none). Records ``credentials.revoked`` with ``reason``.

    Django's session auth hash also signs other browsers out after a password change, but API
    tokens never look at it and removing a second factor does not change it: this is the one
    place that cuts an account off. Platform staff (public schema) have tokens but no tracked
    web sessions there (allauth's user sessions exist in tenant schemas only).
    """
    with transaction.atomic():
        tokens, web = _cut_off(user=user, keep_session_key=keep_session_key)
        audit_record(
            type=AuditEvent.Type.CREDENTIALS_REVOKED,
            request=request,
            actor=actor or user,
            target_user=user,
            reason=reason,
            tokens_revoked=tokens,
            web_sessions=web,
        )
    return {"tokens_revoked": tokens, "web_sessions": web}


def sessions_end_all(*, user: User, actor: User, request: HttpRequest | None = None) -> dict[str, Any]:
    """End every web session and revoke every API token of ``user``."""
    with transaction.atomic():
        tokens, web = _cut_off(user=user)
        audit_record(
            type=AuditEvent.Type.SESSION_ENDED,
            request=request,
            actor=actor,
            target_user=user,
            kind="all",
            web_sessions=web,
            tokens_revoked=tokens,
        )
    return {"web_sessions": web, "tokens_revoked": tokens}
