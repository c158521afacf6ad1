"""A tenant's settings, typed: what each one is, its default and what it accepts.

``Tenant.settings`` (a JSON column) stores them; code reads them through ``TenantSettings``
(``tenant.typed_settings``) and writes them only through ``tenants.services.tenant_settings_update``,
which validates, locks the row, asks the guards other apps registered (``sso_only`` needs an
identity provider: accounts knows that) and tells the listeners what changed, so the change is
audited in the tenant's own log and, for sign-in rules, emailed to its owners.

Reading is forgiving: a key missing from an old row, or of the wrong type, reads as its default;
writing is strict.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def timezone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(_timezones())]


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError({name: "Expected true or false."}, code="invalid")
    return value


def _check_timezone(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in _timezones():
        raise ValidationError(
            {name: "Choose a time zone from the IANA list (e.g. Europe/Paris)."}, code="invalid"
        )
    return value


@dataclass(frozen=True)
class SettingSpec:
    name: str
    label: str
    check: Callable[[str, Any], Any]
    #: A sign-in rule: its changes are audited as security changes and emailed to the owners.
    security: bool
    #: What the owners' email says when the setting becomes ``value``.
    describe: Callable[[Any], str]


def _onoff(on: str, off: str) -> Callable[[Any], str]:
    return lambda value: on if value else off


SPECS: dict[str, SettingSpec] = {
    spec.name: spec
    for spec in (
        SettingSpec(
            "require_mfa",
            "Require two-factor sign-in",
            _check_bool,
            security=True,
            describe=_onoff(
                "Every member must now sign in with a second factor.",
                "A second factor is no longer required to sign in.",
            ),
        ),
        SettingSpec(
            "sso_only",
            "Single sign-on only",
            _check_bool,
            security=True,
            describe=_onoff(
                "Single sign-on is now the only way in (owners keep their password).",
                "Passwords are accepted again.",
            ),
        ),
        SettingSpec(
            "trust_idp_mfa",
            "Trust the identity provider's second factor",
            _check_bool,
            security=True,
            describe=_onoff(
                "A second factor given at the identity provider is now accepted instead of LeanVibe's.",
                "Members with a second factor must now give it after single sign-on too.",
            ),
        ),
        SettingSpec(
            "timezone",
            "Time zone",
            _check_timezone,
            security=False,
            describe=lambda value: f"The organisation's time zone is now {value}.",
        ),
    )
}


@dataclass(frozen=True)
class TenantSettings:
    require_mfa: bool = False
    sso_only: bool = False
    trust_idp_mfa: bool = False
    timezone: str = "UTC"

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any] | None) -> TenantSettings:
        """The settings of a stored JSON object; a missing or invalid value reads as the default."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            if stored is None or field.name not in stored:
                continue
            try:
                values[field.name] = SPECS[field.name].check(field.name, stored[field.name])
            except ValidationError:
                continue
        return cls(**values)

    def to_stored(self) -> dict[str, Any]:
        return asdict(self)


def settings_validate(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Strict check of the values a caller wants to set: unknown names and wrong types are a
    ``ValidationError`` naming the field."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        spec = SPECS.get(name)
        if spec is None:
            errors[name] = "Unknown setting."
            continue
        try:
            clean[name] = spec.check(name, value)
        except ValidationError as exc:
            errors.update({key: " ".join(messages) for key, messages in exc.message_dict.items()})
    if errors:
        raise ValidationError(errors)  # type: ignore[arg-type]
    return clean
