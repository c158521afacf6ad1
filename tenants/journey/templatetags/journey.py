"""``{% journey_panel %}``: the organisation's journey on its dashboard (the current level's
steps with links, a progress ring per level, the badges earned), collapsible."""

from __future__ import annotations

from typing import Any

from django import template

from tenants.journey.selectors import journey_for

register = template.Library()


def journey_view(tenant: Any) -> dict[str, Any]:
    """What the panel and the console show: every level with its progress, the current one
    (the first not unlocked that has steps), the badges earned."""
    data = journey_for(tenant)
    levels = []
    for level in data["levels"]:
        total = len(level["steps"])
        done = sum(1 for step in level["steps"] if step["done"])
        levels.append(
            {
                **level,
                "done": done,
                "total": total,
                "percent": round(100 * done / total) if total else 0,
                "unlocked": level["unlocked_at"] is not None,
            }
        )
    current = next((level for level in levels if not level["unlocked"] and level["total"]), None)
    return {
        "level": data["level"],
        "levels": levels,
        "current": current,
        "badges": [level for level in levels if level["unlocked"]],
        "steps_done": sum(level["done"] for level in levels),
        "steps_total": sum(level["total"] for level in levels),
    }


@register.inclusion_tag("journey/_panel.html", takes_context=True)
def journey_panel(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    return {"journey": journey_view(request.tenant)}
