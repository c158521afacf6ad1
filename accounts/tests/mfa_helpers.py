"""Helpers for the two-factor tests: codes computed with allauth's own TOTP functions."""

from __future__ import annotations

import time
from typing import Any

from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django_otp.oath import totp


def wait_away_from_step_boundary(margin: float = 3.0) -> None:
    """Codes are computed for "now + n steps": stay clear of a step change between computing a
    code and the server checking it, so +1 stays +1 (never becomes 0 or +2)."""
    period = mfa_settings.TOTP_PERIOD
    into_step = time.time() % period
    if into_step > period - margin:
        time.sleep(period - into_step + 0.2)


def totp_code(secret: str, steps: int = 0) -> str:
    """The code of ``secret`` for the time step ``steps`` away from now (clock drift)."""
    counter = int(time.time()) // mfa_settings.TOTP_PERIOD + steps
    return format_hotp_value(hotp_value(secret, counter))


def totp_now(device: Any) -> str:
    """The current code of a django-otp TOTP device (platform staff's second factor)."""
    value = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return f"{value:0{device.digits}d}"


def enrol_totp(api: Any, host: str, token: str) -> dict[str, Any]:
    """Enrol TOTP through the API; returns the setup body. Uses the code of step -1, leaving the
    codes of steps 0 and +1 unused for the test."""
    setup = api.post("/api/v1/auth/mfa/setup", host=host, token=token)
    assert setup.status_code == 200, setup.body
    wait_away_from_step_boundary()
    verify = api.post(
        "/api/v1/auth/mfa/verify", {"code": totp_code(setup.body["secret"], -1)}, host=host, token=token
    )
    assert verify.status_code == 200, verify.body
    return dict(setup.body)


def login(api: Any, handle: Any, **extra: Any) -> Any:
    return api.post(
        "/api/v1/auth/login",
        {"email": handle.owner_email, "password": handle.password, **extra},
        host=handle.host,
    )
