"""Sign-in metrics: ``leanvibe_logins_total{result}``, counted where every sign-in's outcome is
already decided once and recorded once: the audit record (``accounts.services.audit``), which the
API, the web form (allauth's and Django's auth signals), two-factor and SSO flows all write.

``result`` is one of a fixed set: ``succeeded``, ``failed`` (wrong password or unknown account,
SSO-only refusals included), ``mfa_failed`` (right password, wrong second factor),
``sso_succeeded``, ``sso_failed`` (a wrong password while linking an identity) and
``sso_refused`` (the identity provider's answer was not accepted)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter

from accounts.models import AuditEvent

LOGINS = Counter("leanvibe_logins", "Sign-in attempts by result.", ["result"])
RESULTS = ("succeeded", "failed", "mfa_failed", "sso_succeeded", "sso_failed", "sso_refused")


def login_result(type: str, data: Mapping[str, Any]) -> str | None:
    """The ``result`` label of an audit event, or None when it is no sign-in attempt."""
    method = str(data.get("method") or "")
    sso = bool(data.get("provider")) or method.startswith("sso")
    if type == AuditEvent.Type.LOGIN_SUCCEEDED:
        return "sso_succeeded" if sso else "succeeded"
    if type == AuditEvent.Type.LOGIN_FAILED:
        if method == "password_change":  # a wrong current password, not a sign-in
            return None
        return "sso_failed" if sso else "failed"
    if type == AuditEvent.Type.MFA_FAILED and method in ("login", ""):
        return "mfa_failed"  # "" is allauth's web sign-in form (its authentication_failed signal)
    if type == AuditEvent.Type.SSO_LOGIN_REFUSED:
        return "sso_refused"
    return None


def login_observe(type: str, data: Mapping[str, Any]) -> None:
    result = login_result(type, data)
    if result is not None:
        LOGINS.labels(result=result).inc()
