"""``GET /api/v1/billing/revenue/analytics``: platform-wide revenue for platform staff on the
public host (``StaffAPIView``). Read from dj-stripe's mirror and our snapshots; no Stripe call."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing import revenue
from leanvibe.api.base import StaffAPIView, StrictSerializer


class RevenueAnalyticsInput(StrictSerializer):
    months = serializers.IntegerField(
        min_value=1, max_value=revenue.MAX_MONTHS, required=False, default=revenue.DEFAULT_MONTHS
    )


class RevenueAnalyticsApi(StaffAPIView):
    def get(self, request: Request) -> Response:
        query: dict[str, Any] = {key: request.query_params.get(key) for key in request.query_params}
        params = RevenueAnalyticsInput(data=query)
        params.is_valid(raise_exception=True)
        return Response(revenue.revenue_analytics(months=params.validated_data["months"]))
