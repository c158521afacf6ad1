"""Writes for users and tokens."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from accounts.emails import email_canonical
from accounts.models import AuthToken, Invitation, Role, User
from leanvibe.errors import DomainError
from leanvibe.http import client_address
from leanvibe.validators import validate_text_fields
from tenants.token_scope import ACCESS_PREFIX, REFRESH_PREFIX, token_new

if TYPE_CHECKING:
    from tenants.models import Tenant


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def user_create(
    *,
    email: str,
    password: str | None,
    role: str = Role.MEMBER,
    username: str = "",
    full_name: str = "",
    password_is_hashed: bool = False,
) -> User:
    """Create a member of the current schema. ``password`` is validated unless already hashed."""
    validate_text_fields(username=username, full_name=full_name)
    user = User(email=email_canonical(email), username=username, full_name=full_name, role=role)
    if password is None:
        user.set_unusable_password()
    elif password_is_hashed:
        user.password = password
    else:
        validate_password(password, user)
        user.set_password(password)
    # Uniqueness is checked below as the API's "email_taken" (and by the database constraint).
    user.full_clean(validate_unique=False, validate_constraints=False)
    taken = DomainError("email_taken", "Email already registered", status=400)
    if User.objects.filter(email=user.email).exists():  # the canonical form: one per account
        raise taken
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:
        # A concurrent request registered the same email between the check and the insert.
        raise taken from exc
    return user


def member_add(
    *, tenant: Tenant, email: str, password: str | None, role: str = Role.MEMBER, username: str = ""
) -> User:
    """Add a member to ``tenant`` (whose schema is the current one), within the plan's user limit
    (active members and pending invitations, ``seats_in_use``)."""
    from tenants.plans import Resource
    from tenants.usage import quota_check

    with transaction.atomic():
        type(tenant).objects.select_for_update().filter(pk=tenant.pk).values_list("pk").first()
        quota_check(tenant=tenant, resource=Resource.USERS, current=seats_in_use())
        return user_create(email=email, password=password, role=role, username=username)


def seats_in_use() -> int:
    """Seats of the plan's user limit taken in the current schema: active members and pending
    invitations (an invitation holds its seat until it is accepted, revoked or expires)."""
    pending = Invitation.objects.filter(
        accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )
    return User.objects.filter(is_active=True).count() + pending.count()


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


def _is_staff_schema() -> bool:
    """Tokens of the public schema belong to platform staff."""
    return bool(connection.schema_name == get_public_schema_name())  # type: ignore[attr-defined]


def tokens_issue(
    *,
    user: User,
    request: HttpRequest | None = None,
    family: uuid.UUID | None = None,
    refresh_not_after: datetime | None = None,
) -> IssuedTokens:
    """Mint an access token and a refresh token for ``user`` in the current schema, in a new
    family or (when refreshing) in ``family``.

    Platform staff (public schema) get ``STAFF_ACCESS_TOKEN_LIFETIME`` access tokens and a
    refresh token that ends ``STAFF_REFRESH_TOKEN_LIFETIME`` after the sign-in: a refresh passes
    the expiry of the token it rotates as ``refresh_not_after``."""
    now = timezone.now()
    # The prefix names the schema's tenant (or ``public``): on the public host the token alone
    # chooses its tenant (``tenants.token_scope``).
    access, refresh = token_new(prefix=ACCESS_PREFIX), token_new(prefix=REFRESH_PREFIX)
    common = {
        "user": user,
        "ip_address": (client_address(request) or None) if request is not None else None,
        "user_agent": (request.META.get("HTTP_USER_AGENT", "") if request else "")[:300],
    }
    if _is_staff_schema():
        access_lifetime = settings.STAFF_ACCESS_TOKEN_LIFETIME
        refresh_expires_at = now + timedelta(seconds=settings.STAFF_REFRESH_TOKEN_LIFETIME)
        if refresh_not_after is not None:
            refresh_expires_at = min(refresh_expires_at, refresh_not_after)
    else:
        access_lifetime = settings.ACCESS_TOKEN_LIFETIME
        refresh_expires_at = now + timedelta(seconds=settings.REFRESH_TOKEN_LIFETIME)
    family = family or uuid.uuid4()
    AuthToken.objects.bulk_create(
        [
            AuthToken(
                kind=AuthToken.Kind.ACCESS,
                token_hash=token_hash(access),
                family=family,
                expires_at=now + timedelta(seconds=access_lifetime),
                **common,
            ),
            AuthToken(
                kind=AuthToken.Kind.REFRESH,
                token_hash=token_hash(refresh),
                family=family,
                expires_at=refresh_expires_at,
                **common,
            ),
        ]
    )
    return IssuedTokens(access, refresh, access_lifetime)


def auth_login(
    *, email: str, password: str, mfa_code: str | None = None, request: HttpRequest | None = None
) -> IssuedTokens:
    """Check credentials in the current schema and issue tokens; 401 on any mismatch.

    The email is looked up in its canonical form (``accounts.emails``). A member with two-factor
    must also send ``mfa_code`` (422 ``mfa_required`` without it, 401 when wrong: see
    ``accounts.services.mfa.mfa_check_login``); platform staff always (``mfa_check_staff_login``).
    In an SSO-only tenant every attempt but an owner's right password is the same 403
    ``sso_required`` (``accounts.services.sso.password_login_check``)."""
    from accounts.models import AuditEvent
    from accounts.services.audit import audit_record
    from accounts.services.mfa import mfa_check_login, mfa_check_staff_login
    from accounts.services.sso import password_login_check

    canonical = email_canonical(email)
    user = User.objects.filter(email=canonical).first()
    if user is None:
        make_password(password)  # spend the same time as a real check: no user enumeration
        password_valid = False
    else:
        password_valid = user.check_password(password) and user.is_active
    try:  # "SSO only" tenants: the same 403 whether or not the password was right
        password_login_check(
            tenant=getattr(request, "tenant", None), user=user, password_valid=password_valid
        )
    except DomainError as refused:
        audit_record(
            type=AuditEvent.Type.LOGIN_FAILED,
            request=request,
            actor_email=canonical[:254],
            method="password",
            reason=refused.code,
        )
        raise
    if user is not None and password_valid:
        # Platform staff (public schema) always need the code of their django-otp TOTP device,
        # the admin console's; tenant members theirs, if they have a second factor.
        if _is_staff_schema():
            mfa_method: str | None = mfa_check_staff_login(user=user, code=mfa_code, request=request)
        else:
            mfa_method = mfa_check_login(user=user, code=mfa_code, request=request)
        method = f"password+{mfa_method}" if mfa_method else "password"
        audit_record(type=AuditEvent.Type.LOGIN_SUCCEEDED, request=request, actor=user, method=method)
        return tokens_issue(user=user, request=request)
    audit_record(
        type=AuditEvent.Type.LOGIN_FAILED,
        request=request,
        actor_email=canonical[:254],
        method="password",
    )
    raise DomainError("invalid_credentials", "Email or password is incorrect.", status=401)
