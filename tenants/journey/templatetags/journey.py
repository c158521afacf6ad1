"""``{% journey_panel %}``: the organisation's journey on its dashboard (the current level's
steps with links, a progress ring per level, the badges earned), collapsible."""

from __future__ import annotations

from typing import Any

from django import template

from tenants.journey.selectors import journey_summary

register = template.Library()


@register.inclusion_tag("journey/_panel.html", takes_context=True)
def journey_panel(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    return {"journey": journey_summary(request.tenant)}
