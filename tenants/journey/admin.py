"""The console's activation funnel: for the tenants created in a chosen period, the share that
reached each level of the journey and the median time it took, as a chart and a table."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from leanvibe import charts
from tenants.journey.models import ActivationFunnel
from tenants.journey.selectors import Funnel, journey_funnel

DEFAULT_DAYS = 90


class PeriodForm(forms.Form):
    start = forms.DateField(label="Created from", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="to (included)", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            self.add_error("end", "The end comes before the start.")
        return data


def duration_words(value: timedelta | None) -> str:
    """A median time as people say it: minutes, hours or days."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 2 * 86400:
        hours = seconds / 3600
        return f"{hours:.1f} h".replace(".0 h", " h")
    days = seconds / 86400
    return f"{days:.1f} days".replace(".0 days", " days")


def funnel_chart(funnel: Funnel) -> Any:
    points = [
        charts.Point(
            key=str(level.number), label=f"{level.number} {level.badge}", value=round(level.share * 100)
        )
        for level in funnel.levels
    ]
    by_key = {str(level.number): level for level in funnel.levels}

    def title(point: charts.Point) -> str:
        level = by_key[point.key]
        return (
            f"Level {level.number}, {level.name}: {level.reached} of {funnel.tenants} tenants "
            f"({point.value} %), median {duration_words(level.median_time)}"
        )

    return charts.bar_chart(
        points,
        label="Share of the period's new tenants that reached each level",
        fmt=lambda value: f"{value} %",
        colour="#4f46e5",
        css_class="journey-funnel-chart",
        bar_class="journey-funnel-bar",
        title=title,
    )


@admin.register(ActivationFunnel)
class ActivationFunnelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        today = timezone.now().date()
        form = PeriodForm(request.GET or {"start": today - timedelta(days=DEFAULT_DAYS), "end": today})
        if form.is_valid():
            start_day, end_day = form.cleaned_data["start"], form.cleaned_data["end"]
        else:
            start_day, end_day = today - timedelta(days=DEFAULT_DAYS), today
        start = datetime.combine(start_day, time.min, tzinfo=UTC)
        end = datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=UTC)
        funnel = journey_funnel(start=start, end=end)
        context = {
            **self.admin_site.each_context(request),
            "title": "Activation funnel",
            "opts": self.model._meta,
            "app_label": self.model._meta.app_label,
            "form": form,
            "funnel": funnel,
            "start_day": start_day,
            "end_day": end_day,
            "chart": funnel_chart(funnel) if funnel.tenants else None,
            "rows": [
                {
                    "level": level,
                    "percent": f"{level.share * 100:.0f} %",
                    "median": duration_words(level.median_time),
                }
                for level in funnel.levels
            ],
            **(extra_context or {}),
        }
        return TemplateResponse(request, "journey/admin/funnel.html", context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)
