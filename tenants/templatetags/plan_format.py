"""Template filters that show plan limits and usage the way people read them."""

from __future__ import annotations

from django import template

register = template.Library()

_UNITS = ("bytes", "KB", "MB", "GB", "TB", "PB")


@register.filter
def human_bytes(value: int | None) -> str:
    """``1073741824`` -> ``1 GB``, ``1536`` -> ``1.5 KB`` (binary multiples, as the plans are)."""
    if value is None:
        return "Unlimited"
    size = float(value)
    unit = 0
    while size >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    if unit == 0:
        return f"{int(size)} bytes" if int(size) != 1 else "1 byte"
    text = f"{size:.1f}".removesuffix(".0")
    return f"{text} {_UNITS[unit]}"


@register.filter
def human_count(value: int | None) -> str:
    """``10000`` -> ``10,000``; ``None`` (no limit) -> ``Unlimited``."""
    if value is None:
        return "Unlimited"
    return f"{value:,}"
