"""``GET /api/v1/journey``: where the organisation stands on the journey (any member)."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from leanvibe.api.base import TenantAPIView
from tenants.journey.selectors import journey_for


class JourneyApi(TenantAPIView):
    http_method_names = ["get", "head", "options"]

    def get(self, request: Request) -> Response:
        return Response(journey_for(request.tenant))  # type: ignore[attr-defined]
