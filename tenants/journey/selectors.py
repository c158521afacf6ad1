"""Reads of the journey: one tenant's levels and steps, and the operator's activation funnel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from psycopg import sql

from tenants.journey.models import LevelUnlocked, StepDone
from tenants.journey.registry import LEVELS, journey_steps
from tenants.links import tenant_url
from tenants.models import Tenant


def journey_for(tenant: Tenant) -> dict[str, Any]:
    """The API's and the dashboard's view: ``level`` is the highest unlocked level (0: none)."""
    done = dict(StepDone.objects.filter(tenant_id=tenant.pk).values_list("step", "done_at"))
    unlocked = dict(LevelUnlocked.objects.filter(tenant_id=tenant.pk).values_list("number", "unlocked_at"))
    levels = []
    for level in LEVELS:
        steps = [
            {
                "id": step.id,
                "title": step.title,
                "done": step.id in done,
                "done_at": done.get(step.id),
                "help_url": tenant_url(tenant, step.help_url),
            }
            for step in journey_steps(level.number)
        ]
        levels.append(
            {
                "number": level.number,
                "name": level.name,
                "badge": level.badge,
                "unlocked_at": unlocked.get(level.number),
                "steps": steps,
            }
        )
    return {"level": max(unlocked, default=0), "levels": levels}


def journey_summary(tenant: Tenant) -> dict[str, Any]:
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


@dataclass(frozen=True)
class FunnelLevel:
    number: int
    name: str
    badge: str
    reached: int
    share: float  # of the tenants created in the period, 0..1
    median_time: timedelta | None  # from the tenant's creation to the unlock


@dataclass(frozen=True)
class Funnel:
    start: datetime
    end: datetime
    tenants: int
    levels: list[FunnelLevel]


def journey_funnel(*, start: datetime, end: datetime) -> Funnel:
    """For the tenants created in [start, end): how many reached each level and the median
    time it took them. Two queries, whatever the number of tenants."""
    total = Tenant.objects.filter(created_at__gte=start, created_at__lt=end).count()
    tenant_table = Tenant._meta.db_table
    level_table = LevelUnlocked._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL(
                """
                SELECT l.number, count(*),
                       percentile_cont(0.5) WITHIN GROUP (
                           ORDER BY extract(epoch FROM l.unlocked_at - t.created_at))
                FROM public.{levels} l JOIN public.{tenants} t ON t.id = l.tenant_id
                WHERE t.created_at >= %s AND t.created_at < %s
                GROUP BY l.number
                """
            ).format(levels=sql.Identifier(level_table), tenants=sql.Identifier(tenant_table)),
            [start, end],
        )
        rows = {number: (count, median) for number, count, median in cursor.fetchall()}
    levels = []
    for level in LEVELS:
        count, median = rows.get(level.number, (0, None))
        levels.append(
            FunnelLevel(
                number=level.number,
                name=level.name,
                badge=level.badge,
                reached=count,
                share=count / total if total else 0.0,
                median_time=timedelta(seconds=float(median)) if median is not None else None,
            )
        )
    return Funnel(start=start, end=end, tenants=total, levels=levels)
