"""What the apps add to a tenant, registered from their ``AppConfig.ready()``.

``tenants`` knows no feature: provisioning, usage, quotas, the tenant list's member count and
the owner emails go through this registry, and each app fills it in. A **quota resource** is
something a plan limits and the usage page shows (``projects`` by agents, ``users`` = seats by
accounts); a **provisioning step** is work done for a new tenant, in its schema, inside the
provisioning transaction (``IN_TRANSACTION``) or once it is committed (``AFTER_COMMIT``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection

if TYPE_CHECKING:
    from tenants.models import Tenant


class Unit(enum.StrEnum):
    COUNT = "count"
    BYTES = "bytes"


@dataclass(frozen=True)
class QuotaResource:
    """``count(tenant)`` runs with the tenant's schema as the current one. ``noun`` (singular,
    plural) words the refusal: "Project limit reached (5). Upgrade to create more projects."."""

    name: str
    label: str
    count: Callable[[Tenant], int]
    order: int = 100
    unit: Unit = Unit.COUNT
    noun: tuple[str, str] = ("", "")


class Phase(enum.StrEnum):
    IN_TRANSACTION = "in_transaction"
    AFTER_COMMIT = "after_commit"


@dataclass(frozen=True)
class NewTenant:
    """What a provisioning step knows of the tenant being made. ``owner_password_hash`` is
    already hashed; ``owner_email_verified`` is true when nobody chose the password (the owner
    proves the address by using the emailed one)."""

    tenant: Tenant
    owner_email: str
    owner_password_hash: str
    owner_email_verified: bool


@dataclass(frozen=True)
class ProvisioningStep:
    name: str
    order: int
    run: Callable[[NewTenant], None]
    phase: Phase = Phase.IN_TRANSACTION


@dataclass(frozen=True)
class TenantContacts:
    """Who hears from the platform about a tenant. ``owner_emails(tenant)`` runs in the
    tenant's schema; ``confirmation_url(tenant, email)`` (same) returns a link confirming an
    unverified address, or None. ``member_count_sql(quoted_schema)`` is one SELECT returning the
    number of active members of that schema, so a page of tenants is counted in one query."""

    owner_emails: Callable[[Tenant], list[str]]
    confirmation_url: Callable[[Tenant, str], str | None]
    member_count_sql: Callable[[str], str]


class RegistryError(RuntimeError):
    pass


_resources: dict[str, QuotaResource] = {}
_steps: dict[str, ProvisioningStep] = {}
_contacts: list[TenantContacts] = []


def quota_resource_register(resource: QuotaResource) -> None:
    existing = _resources.get(resource.name)
    if existing is not None and existing != resource:
        raise RegistryError(f"quota resource {resource.name!r} is already registered")
    _resources[resource.name] = resource


def quota_resources() -> list[QuotaResource]:
    """Every registered resource, by ``order`` (the usage page's order)."""
    return sorted(_resources.values(), key=lambda r: (r.order, r.name))


def quota_resource(name: str) -> QuotaResource:
    try:
        return _resources[name]
    except KeyError:
        raise RegistryError(f"no quota resource {name!r} is registered") from None


def provisioning_step_register(step: ProvisioningStep) -> None:
    existing = _steps.get(step.name)
    if existing is not None and existing != step:
        raise RegistryError(f"provisioning step {step.name!r} is already registered")
    _steps[step.name] = step


def provisioning_step_unregister(name: str) -> None:
    """Remove a step (an app switched off at run time; tests)."""
    _steps.pop(name, None)


def provisioning_steps(phase: Phase) -> list[ProvisioningStep]:
    return sorted((s for s in _steps.values() if s.phase == phase), key=lambda s: (s.order, s.name))


def tenant_contacts_register(contacts: TenantContacts) -> None:
    if _contacts and _contacts[0] != contacts:
        raise RegistryError("tenant contacts are already registered")
    _contacts[:] = [contacts]


def tenant_contacts() -> TenantContacts:
    if not _contacts:
        raise RegistryError("no app registered the tenant contacts")
    return _contacts[0]


def quoted_schema(tenant: Tenant) -> str:
    return str(connection.ops.quote_name(tenant.schema_name))


# --- settings: guards and listeners ---------------------------------------------------------


@dataclass(frozen=True)
class ChangeActor:
    """Who changed something of a tenant: one of its members (``member_id``, in its schema) or
    someone outside it (platform staff in the admin console, a command), known by email only.
    ``via`` says where: ``api``, ``web``, ``console`` or ``command``."""

    email: str = ""
    member_id: int | None = None
    ip_address: str | None = None
    user_agent: str = ""
    via: str = "api"


@dataclass(frozen=True)
class SettingsChange:
    """What ``tenant_settings_update`` changed: ``changes`` holds the new values, ``previous``
    the old ones, of the settings that really changed."""

    tenant: Tenant
    changes: dict[str, Any]
    previous: dict[str, Any]
    actor: ChangeActor


#: ``guard(tenant, value)`` raises a ``DomainError`` (or ``ValidationError``) to refuse a value.
SettingGuard = Callable[["Tenant", Any], None]
SettingsListener = Callable[[SettingsChange], None]

_setting_guards: dict[str, list[SettingGuard]] = {}
_settings_listeners: list[SettingsListener] = []


def setting_guard_register(name: str, guard: SettingGuard) -> None:
    """Refuse some values of setting ``name`` (e.g. ``sso_only`` without an identity provider).
    Guards run in the tenant's schema, with its row locked, before anything is written."""
    guards = _setting_guards.setdefault(name, [])
    if guard not in guards:
        guards.append(guard)


def setting_guards(name: str) -> list[SettingGuard]:
    return list(_setting_guards.get(name, ()))


def settings_listener_register(listener: SettingsListener) -> None:
    """Called in the tenant's schema, inside the transaction that saved the change (so an audit
    row commits or rolls back with it); side effects such as email go ``on_commit``."""
    if listener not in _settings_listeners:
        _settings_listeners.append(listener)


def settings_listeners() -> list[SettingsListener]:
    return list(_settings_listeners)


# --- API gates: per-tenant switches read in the meter's round trip ----------------------------


@dataclass(frozen=True)
class ApiGate:
    """A per-tenant switch that can close a tenant's API, read in the same Redis round trip as
    the API call meter (``tenants.usage.api_call_meter``), so it costs nothing extra.

    ``key(tenant_id)`` names a Redis string; when its value is one of ``closes(method)`` the
    request is refused with ``refuse(value)`` (a ``DomainError``) before its view runs, and not
    counted. Paths under ``exempt_prefixes`` are never closed. Billing registers one: writes
    while payment is required, everything while suspended for non-payment."""

    name: str
    key: Callable[[Any], str]
    closes: Callable[[str], frozenset[str]]
    refuse: Callable[[str], Exception]
    exempt_prefixes: tuple[str, ...] = ()


_api_gates: dict[str, ApiGate] = {}


def api_gate_register(gate: ApiGate) -> None:
    existing = _api_gates.get(gate.name)
    if existing is not None and existing != gate:
        raise RegistryError(f"API gate {gate.name!r} is already registered")
    _api_gates[gate.name] = gate


def api_gates() -> list[ApiGate]:
    return [gate for _, gate in sorted(_api_gates.items())]


# --- storage kept outside the tenant's schema -------------------------------------------------
#: Bytes a tenant stores outside its schema (files on disk: the agents' workspaces), counted in
#: its ``storage`` quota beside the schema's tables (``tenants.usage.storage_bytes``).
StorageMeasure = Callable[["Tenant"], int]
_storage_measures: dict[str, StorageMeasure] = {}


def storage_measure_register(name: str, measure: StorageMeasure) -> None:
    _storage_measures[name] = measure


def storage_measures() -> list[StorageMeasure]:
    return [_storage_measures[name] for name in sorted(_storage_measures)]


# --- public rows that move with a tenant (tenant_export / tenant_import) ----------------------


@dataclass(frozen=True)
class TenantRename:
    """How a tenant is renamed on import (``tenant_import --rename``): a new id and subdomain,
    so the copy can live beside the original."""

    old_id: Any
    new_id: Any
    old_subdomain: str
    new_subdomain: str


@dataclass(frozen=True)
class TenantPublicRows:
    """Rows of a public-schema model that belong to one tenant and move with it
    (``tenants.moves``): those whose ``tenant_field`` points at the tenant's id.

    ``copy(row, rename)`` adapts a row for a renamed copy (its tenant reference and own id are
    already new); None leaves the row out. ``put(row, tenant)`` replaces the plain insert for rows
    that may already be in the target database (a mirror of an outside object) and returns what
    it did (``"inserted"``, ``"linked"``, ``"skipped"``)."""

    model: type[Any]
    tenant_field: str
    order: int = 100
    copy: Callable[[Any, TenantRename], Any | None] | None = None
    put: Callable[[Any, Tenant], str] | None = None

    @property
    def label(self) -> str:
        return str(self.model._meta.label_lower)


_public_rows: dict[str, TenantPublicRows] = {}


def tenant_public_rows_register(rows: TenantPublicRows) -> None:
    existing = _public_rows.get(rows.label)
    if existing is not None and existing != rows:
        raise RegistryError(f"public rows of {rows.label!r} are already registered")
    _public_rows[rows.label] = rows


def tenant_public_rows() -> list[TenantPublicRows]:
    """Every registered kind of row, by ``order`` (the order they are inserted in)."""
    return sorted(_public_rows.values(), key=lambda r: (r.order, r.label))
