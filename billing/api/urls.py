"""Billing API routes, under ``/api/v1/billing/`` on the public and tenant hosts."""

from __future__ import annotations

from django.urls import URLPattern, path

from billing.api.views import UsageAnalyticsApi, UsageRecordApi

urlpatterns: list[URLPattern] = [
    path("usage", UsageRecordApi.as_view(), name="api-billing-usage"),
    path("usage/analytics", UsageAnalyticsApi.as_view(), name="api-billing-usage-analytics"),
]
