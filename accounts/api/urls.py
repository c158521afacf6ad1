"""Accounts API routes (mounted under /api/v1/ on both the public and the tenant hosts)."""

from django.urls import path

from accounts.api.views import LoginApi

urlpatterns = [
    path("auth/login", LoginApi.as_view(), name="api-login"),
]
