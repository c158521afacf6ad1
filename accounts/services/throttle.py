"""Brute-force protection for sign-in, shared by the API login and the web sign-in form.

Failed sign-ins are counted per account (the email, within the tenant) and per client address
in Django's cache: the shared Redis, with keys namespaced per tenant schema by django-tenants'
``make_key``, so every process sees the same counters and tenants never share them.

The policy (settings, all from the environment):

- ``LOGIN_FAILURE_LIMIT`` failures of one account within ``LOGIN_FAILURE_WINDOW`` seconds, or
  ``LOGIN_FAILURE_IP_LIMIT`` failures from one address, lock that account (or address) for
  ``LOGIN_FAILURE_WINDOW`` seconds. The failure that reaches the limit is already refused with
  429 and ``Retry-After``; while locked, even the right password is refused. Locks expire on
  their own (a Redis TTL): an attacker can delay a real user, never lock them out for good.
- Before a lock, each attempt on an account with recent failures waits
  ``LOGIN_FAILURE_DELAY`` seconds per failure (at most ``MAX_DELAY``), *before* the password is
  checked, so cutting the connection early tells the attacker nothing.
- A successful sign-in clears the account's failure count (not the address's: an attacker who
  owns one account cannot reset the counter of the address they attack from).

The web form is also covered by allauth's own ``login_failed`` rate limit, configured with the
same numbers in ``ACCOUNT_RATE_LIMITS``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from typing import Any

from allauth.account.signals import user_logged_in
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.emails import email_canonical
from accounts.models import AuditEvent
from accounts.services.audit import LOGIN_AUDITED_ATTRIBUTE, audit_record
from leanvibe.http import client_address

MAX_DELAY = 2.0


class LoginLocked(Exception):
    """Sign-in is refused for ``retry_after`` more seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Sign-in locked for {retry_after} s")
        self.retry_after = retry_after

    detail = "Too many failed sign-in attempts."


def _account_ident(email: str) -> str:
    return hashlib.sha256(email_canonical(email).encode()).hexdigest()[:40]


def _scopes(email: str, ip: str) -> list[tuple[str, int]]:
    """(key suffix, limit) for each counter an attempt feeds."""
    return [
        (f"account={_account_ident(email)}", settings.LOGIN_FAILURE_LIMIT),
        (f"ip={ip or 'unknown'}", settings.LOGIN_FAILURE_IP_LIMIT),
    ]


def _failures_key(scope: str) -> str:
    return f"login.failures?{scope}"


def _lock_key(scope: str) -> str:
    return f"login.lock?{scope}"


def _seconds_left(unlock_at: Any) -> int:
    if not isinstance(unlock_at, int | float):
        return 0
    return max(0, math.ceil(unlock_at - time.time()))


def login_lock_remaining(*, email: str, ip: str) -> int:
    """Seconds until the account and the address may try again (0: not locked)."""
    keys = [_lock_key(scope) for scope, _limit in _scopes(email, ip)]
    found = cache.get_many(keys)
    return max((_seconds_left(found.get(key)) for key in keys), default=0)


def login_failure_count(*, email: str) -> int:
    return int(cache.get(_failures_key(_scopes(email, "")[0][0])) or 0)


def login_attempt_guard(*, email: str, ip: str) -> None:
    """Call before checking a password: raises ``LoginLocked`` while locked, else waits the
    slow-down delay the account's recent failures have earned."""
    remaining = login_lock_remaining(email=email, ip=ip)
    if remaining:
        raise LoginLocked(remaining)
    delay = min(settings.LOGIN_FAILURE_DELAY * login_failure_count(email=email), MAX_DELAY)
    if delay > 0:
        time.sleep(delay)


def login_failure_record(*, email: str, ip: str) -> None:
    """Count one failed sign-in. Raises ``LoginLocked`` if this failure reached a limit."""
    window = max(1, int(settings.LOGIN_FAILURE_WINDOW))
    locked_for = 0
    for scope, limit in _scopes(email, ip):
        key = _failures_key(scope)
        # The window starts at the first failure: ``add`` sets the TTL once, INCR keeps it.
        cache.add(key, 0, timeout=window)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window)
            count = 1
        if count >= limit:
            cache.set(_lock_key(scope), time.time() + window, timeout=window)
            cache.delete(key)
            locked_for = window
    if locked_for:
        raise LoginLocked(locked_for)


def login_success_reset(*, email: str) -> None:
    cache.delete(_failures_key(_scopes(email, "")[0][0]))


# --- the web sign-in form ----------------------------------------------------------------------
# allauth checks the password with django.contrib.auth.authenticate (which sends
# ``user_login_failed``) and sends its own ``user_logged_in`` once a sign-in is complete
# (after the second factor, if any); the test client's login() sends neither with a request.
def _credentials_email(credentials: dict[str, Any]) -> str:
    value = credentials.get("email") or credentials.get("username") or credentials.get("login") or ""
    return str(value)[:254]


@receiver(user_login_failed, dispatch_uid="accounts.throttle.login_failed")
def _on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kw: Any
) -> None:
    if request is None:
        return
    email = _credentials_email(credentials)
    audit_record(
        type=AuditEvent.Type.LOGIN_FAILED,
        request=request,
        actor_email=email_canonical(email)[:254],
        method="web",
    )
    with contextlib.suppress(LoginLocked):  # the sign-in view answers 429 once it sees the lock
        login_failure_record(email=email, ip=client_address(request))


@receiver(user_logged_in, dispatch_uid="accounts.throttle.logged_in")
def _on_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kw: Any) -> None:
    if request is None or not getattr(user, "email", ""):
        return
    login_success_reset(email=user.email)
    if getattr(request, LOGIN_AUDITED_ATTRIBUTE, False):
        return  # the flow that signed the user in (SSO) recorded it already
    provider = kw.get("sso_provider")  # our OpenID Connect and link flows (accounts.views.sso)
    extra: dict[str, Any] = {"provider": str(provider)} if provider else {}
    method = "sso" if kw.get("sociallogin") is not None or provider else "web"
    audit_record(type=AuditEvent.Type.LOGIN_SUCCEEDED, request=request, actor=user, method=method, **extra)
