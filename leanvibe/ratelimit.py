"""Fixed-window rate limits counted in Django's cache (Redis, shared by every process; keys are
tenant-namespaced by django-tenants' ``make_key``, so a tenant's counters never meet another's).

    rate = parse_rate(settings.INVITATION_RATE)          # "20/hour"
    retry_after = rate_consume(key=f"invite:user:{user.pk}", rate=rate)
    if retry_after is not None: ...                       # refused: try again in that many seconds
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_UNITS |= {"d": 86400, "day": 86400}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*$")


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int


def parse_rate(text: str) -> Rate:
    """``"20/hour"``, ``"100/h"``, ``"5/300s"``, ``"10/15min"`` → ``Rate``."""
    match = _RATE_RE.match(str(text).lower())
    if not match or match.group(3) not in _UNITS:
        raise ImproperlyConfigured(f"not a rate: {text!r} (write e.g. 20/hour or 5/300s)")
    multiplier = int(match.group(2) or 1)
    return Rate(int(match.group(1)), multiplier * _UNITS[match.group(3)])


def rate_consume(*, key: str, rate: Rate) -> int | None:
    """Count one use of ``key``. ``None`` if it is within ``rate``; otherwise the seconds until
    the window ends (the use is still counted: hammering does not shorten the wait)."""
    now = time.time()
    window = int(now // rate.seconds)
    counter = f"ratelimit:{key}:{window}"
    cache.add(counter, 0, timeout=rate.seconds + 1)
    try:
        used = cache.incr(counter)
    except ValueError:  # expired between add and incr: this use starts the window
        cache.add(counter, 1, timeout=rate.seconds + 1)
        used = 1
    if used <= rate.count:
        return None
    return max(1, math.ceil((window + 1) * rate.seconds - now))


def rate_first_refusal(*, key: str, rate: Rate) -> bool:
    """True once per window of ``rate`` for ``key``: lets a caller record one audit event per
    window instead of one per refused request."""
    window = int(time.time() // rate.seconds)
    return bool(cache.add(f"ratelimit:{key}:{window}:refused", 1, timeout=rate.seconds + 1))
