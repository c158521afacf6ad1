"""Who sent a request: the one client-address helper of the platform.

Audit events, API tokens, web sessions (allauth's ``UserSession``), the sign-in throttles,
allauth's rate limits, DRF throttles (sign-up, SSO initiation) and the ``/metrics`` localhost
rule all ask :func:`client_address`, so they agree on who the client is.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _address(value: str) -> str:
    """``value`` as a normalised IP address, or ``""``. Proxies may add a port (``1.2.3.4:5678``,
    ``[::1]:5678``)."""
    value = value.strip()
    if value.startswith("[") and "]" in value:
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return ""


def client_address(request: HttpRequest) -> str:
    """The client's IP address, or ``""`` when none can be told.

    ``NUM_PROXIES`` is the number of proxies in front of the application that append the
    address they saw to ``X-Forwarded-For`` (1 behind the Kubernetes ingress). The client is the
    address the outermost of them saw: the ``NUM_PROXIES``-th entry from the right (or the
    leftmost, when the request passed fewer proxies). Entries further left were written by the
    client and are never read. With ``NUM_PROXIES = 0`` the header is ignored: ``REMOTE_ADDR``.
    """
    proxies = int(settings.NUM_PROXIES)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies > 0 and forwarded:
        entries = forwarded.split(",")
        # Not the proxy's own address when the entry is unreadable: a proxy on this machine
        # would make every such request local.
        return _address(entries[-min(proxies, len(entries))])
    return _address(str(request.META.get("REMOTE_ADDR") or ""))


def is_local(request: HttpRequest) -> bool:
    """The request comes from this machine itself (a proxy on this machine does not count:
    behind one, the client is the address it forwarded)."""
    address = client_address(request)
    return bool(address) and ipaddress.ip_address(address).is_loopback


def has_metrics_token(request: HttpRequest) -> bool:
    """The request carries ``METRICS_TOKEN`` as its bearer token (compared in constant time)."""
    token = settings.METRICS_TOKEN
    supplied = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode())


def is_operator(request: HttpRequest) -> bool:
    """Prometheus or an operator: the ``METRICS_TOKEN`` bearer token, or, when none is
    configured, the machine itself. ``/metrics`` and the details of ``/health/ready`` are theirs."""
    return has_metrics_token(request) if settings.METRICS_TOKEN else is_local(request)
