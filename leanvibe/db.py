"""The default connection, typed as django-tenants' schema-aware wrapper it is at run time."""

from __future__ import annotations

from typing import Any, Protocol, cast

from django.db import connection as _connection
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.backends.utils import CursorWrapper


class TenantConnection(Protocol):
    schema_name: str
    tenant: Any  # the tenant of set_tenant(), or django-tenants' FakeTenant (schema name only)
    ops: BaseDatabaseOperations
    in_atomic_block: bool

    def set_schema_to_public(self) -> None: ...

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None: ...

    def set_schema(self, schema_name: str, include_public: bool = True) -> None: ...

    def cursor(self) -> CursorWrapper: ...

    def close(self) -> None: ...


# A proxy to the current thread's connection, like django.db.connection itself.
connection = cast(TenantConnection, _connection)
