"""Billing API routes, under ``/api/v1/billing/`` on the public and tenant hosts."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
