"""Writes for users and tokens."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
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
from tenants.plans import Resource
from tenants.token_scope import ACCESS_PREFIX, REFRESH_PREFIX, token_new
from tenants.usage import quota_reserve

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
    with transaction.atomic():
        quota_reserve(tenant=tenant, resource=Resource.USERS)
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


def is_staff_schema() -> bool:
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
    if is_staff_schema():
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
