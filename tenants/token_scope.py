"""The tenant a bearer token names in its prefix.

Tokens are ``lva_<scope>_<secret>`` (access) and ``lvr_<scope>_<secret>`` (refresh), where the
scope is the hex of the tenant's uuid, or ``public`` for platform staff. The middleware reads the
scope to choose the tenant of a request on the public host that sends no ``X-Tenant-ID``, and
authentication refuses a token whose scope is not the connection's: the scope is a routing hint,
never a credential. The whole token, prefix included, is hashed and looked up in one schema, so
a prefix changed by hand finds nothing.

Tokens minted before the prefix (``lva_<secret>``) have no scope: they keep working with a host
or ``X-Tenant-ID`` until they expire.
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Literal

from django_tenants.utils import get_public_schema_name

from leanvibe.db import connection
from tenants import selectors

ACCESS_PREFIX = "lva"
REFRESH_PREFIX = "lvr"
PUBLIC_SCOPE: Literal["public"] = "public"

TokenScope = uuid.UUID | Literal["public"]

_SCOPED = re.compile(r"^lv[ar]_(public|[0-9a-f]{32})_[A-Za-z0-9_-]{20,200}$")


def token_scope(token: str) -> TokenScope | None:
    """The scope a token names: a tenant id, ``PUBLIC_SCOPE``, or ``None`` (old format, or not
    one of our tokens at all). Reads the string only, never the database."""
    match = _SCOPED.match(token)
    if match is None:
        return None
    scope = match.group(1)
    return PUBLIC_SCOPE if scope == PUBLIC_SCOPE else uuid.UUID(hex=scope)


def _known_connection_scope() -> TokenScope | None:
    """The scope of the connection's schema if known without a query: a request's tenant is set
    with ``set_tenant`` (a ``Tenant``); a schema switched by name (``schema_context``) is not."""
    if connection.schema_name == get_public_schema_name():
        return PUBLIC_SCOPE
    tenant_id = getattr(connection.tenant, "id", None)
    return tenant_id if isinstance(tenant_id, uuid.UUID) else None


def _connection_scope() -> TokenScope:
    scope = _known_connection_scope()
    if scope is not None:
        return scope
    tenant = selectors.tenant_get_by_subdomain(connection.schema_name)
    if tenant is None:
        raise LookupError(f"No tenant owns the schema {connection.schema_name!r}.")
    return tenant.id


def token_new(*, prefix: str) -> str:
    """A new secret token of the current schema's scope (``prefix`` is ``ACCESS_PREFIX`` or
    ``REFRESH_PREFIX``)."""
    scope = _connection_scope()
    marker = scope.hex if isinstance(scope, uuid.UUID) else PUBLIC_SCOPE
    return f"{prefix}_{marker}_{secrets.token_urlsafe(32)}"


def token_fits_connection(token: str) -> bool:
    """Whether ``token`` may be looked up in the connection's schema: an unscoped (old) token
    may, a scoped one only in the schema its scope names. Never a query: authentication stays
    one. (Refusing here saves the lookup; finding nothing in the wrong schema is the guarantee.)"""
    scope = token_scope(token)
    if scope is None:
        return True
    current = _known_connection_scope()
    if current is None:  # a tenant's schema switched by name: the lookup in it alone decides
        return scope != PUBLIC_SCOPE
    return scope == current
