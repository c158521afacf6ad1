"""``/api/v1/exports``: self-service exports of all of the organisation's data, for owners.

``POST`` queues one (202), ``GET`` lists them, ``GET /exports/{id}`` follows one: its status
(pending, running, ready, failed, expired), its progress, and once ready a signed
``download_url`` valid ``EXPORTS_LINK_MAX_AGE`` seconds (a new one on every call).
"""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.exports.services import (
    data_export_download_url,
    data_export_link_expires_at,
    data_export_request,
)
from accounts.models import DataExport, Role
from leanvibe.api.base import TenantAPIView
from leanvibe.errors import DomainError
from leanvibe.parsing import parse_uuid
from tenants.models import Tenant

OWNER_ONLY = dict.fromkeys(("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"), Role.OWNER)


def export_output(export: DataExport, tenant: Tenant) -> dict[str, Any]:
    url = data_export_download_url(tenant=tenant, export=export)
    return {
        "id": str(export.id),
        "status": export.status,
        "progress": export.progress,
        "parts_done": export.parts_done,
        "parts_total": export.parts_total,
        "size": export.size if export.status == DataExport.Status.READY else None,
        "requested_by": export.requested_by_email,
        "created_at": export.created_at,
        "finished_at": export.finished_at,
        "deleted_at": export.deleted_at,
        "error": export.error or None,
        "download_url": url,
        "download_url_expires_at": data_export_link_expires_at() if url else None,
    }


class ExportListApi(TenantAPIView):
    role_map = OWNER_ONLY

    def get(self, request: Request) -> Response:
        exports = DataExport.objects.order_by("-created_at")[:50]
        return Response({"results": [export_output(e, request.tenant) for e in exports]})  # type: ignore[attr-defined]

    def post(self, request: Request) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        export = data_export_request(tenant=tenant, by=request.user, request=request)  # type: ignore[arg-type]
        export.refresh_from_db()
        return Response(export_output(export, tenant), status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(TenantAPIView):
    role_map = OWNER_ONLY

    def get(self, request: Request, export_id: str) -> Response:
        pk = parse_uuid(export_id)
        export = DataExport.objects.filter(id=pk).first() if pk is not None else None
        if export is None:
            raise DomainError("not_found", "No such export.", status=404)
        return Response(export_output(export, request.tenant))  # type: ignore[attr-defined]
