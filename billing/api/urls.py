"""Billing API routes, under ``/api/v1/billing/`` on the public and tenant hosts."""

from __future__ import annotations

from django.urls import URLPattern, path

from billing.api import revenue, views
from billing.api.usage import UsageAnalyticsApi, UsageRecordApi

urlpatterns: list[URLPattern] = [
    path("usage", UsageRecordApi.as_view(), name="api-billing-usage"),
    path("usage/analytics", UsageAnalyticsApi.as_view(), name="api-billing-usage-analytics"),
    path("plans", views.PlanListApi.as_view(), name="api-billing-plans"),
    path("subscription", views.SubscriptionApi.as_view(), name="api-billing-subscription"),
    path("subscribe", views.SubscribeApi.as_view(), name="api-billing-subscribe"),
    path(
        "subscription/change", views.SubscriptionChangeApi.as_view(), name="api-billing-subscription-change"
    ),
    path(
        "subscription/cancel", views.SubscriptionCancelApi.as_view(), name="api-billing-subscription-cancel"
    ),
    path(
        "subscription/resume", views.SubscriptionResumeApi.as_view(), name="api-billing-subscription-resume"
    ),
    path("portal", views.PortalApi.as_view(), name="api-billing-portal"),
    path("invoices", views.InvoiceListApi.as_view(), name="api-billing-invoices"),
    path("invoices/upcoming", views.InvoiceUpcomingApi.as_view(), name="api-billing-invoices-upcoming"),
]
urlpatterns.append(
    path("revenue/analytics", revenue.RevenueAnalyticsApi.as_view(), name="api-billing-revenue-analytics")
)
