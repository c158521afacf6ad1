from __future__ import annotations

from django import forms

from tenants.plans import Interval, Plan


class PlanChangeForm(forms.Form):
    plan_id = forms.ChoiceField(label="Plan", choices=Plan.choices)
    interval = forms.ChoiceField(
        label="Billed", choices=[(Interval.MONTH.value, "Monthly"), (Interval.YEAR.value, "Yearly")]
    )
