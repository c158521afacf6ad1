"""The data export page (owners) and the download behind the signed link.

The page lists the exports, starts one ("Export all data") and refreshes itself every few
seconds while one is being written (a meta refresh: no script), showing its progress bar.
The download needs no session: the link's signature is the permission (the API hands it to
owners only, valid 24 hours), so it also works from a script that called the API with a
token. Its errors are JSON, like the API's.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts.exports.services import (
    ACTIVE,
    data_export_download_url,
    data_export_downloaded,
    data_export_for_link,
    data_export_request,
)
from accounts.models import DataExport, Role
from accounts.permissions import role_required
from leanvibe.access import public_page
from leanvibe.errors import DomainError

REFRESH_SECONDS = 3


@role_required(Role.OWNER)
@require_http_methods(["GET", "HEAD", "POST"])
def exports_page(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    if request.method == "POST":
        try:
            data_export_request(tenant=tenant, by=request.user, request=request)  # type: ignore[arg-type]
        except DomainError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, "Export started: the archive is being written.")
        return redirect("data-exports")
    exports = list(DataExport.objects.order_by("-created_at")[:20])
    rows = [(export, data_export_download_url(tenant=tenant, export=export)) for export in exports]
    context = {
        "rows": rows,
        "in_progress": any(export.status in ACTIVE for export in exports),
        "refresh_seconds": REFRESH_SECONDS,
    }
    return render(request, "accounts/exports/list.html", context)


@public_page("a data export's download: the signed link is the permission")
@require_GET
def data_export_download_view(request: HttpRequest, export_id: str) -> HttpResponseBase:
    tenant = getattr(request, "tenant", None)
    if tenant is None or getattr(tenant, "schema_name", "public") == "public":
        return JsonResponse({"error": "not_found", "detail": "No such download."}, status=404)
    try:
        export, path = data_export_for_link(
            tenant=tenant, export_id=str(export_id), signature=request.GET.get("signature", "")
        )
    except DomainError as exc:
        return JsonResponse({"error": exc.code, "detail": exc.detail}, status=exc.status)
    data_export_downloaded(request=request, export=export)
    filename = f"leanvibe-export-{tenant.subdomain}-{timezone.localdate().isoformat()}.zip"
    response = FileResponse(
        path.open("rb"), as_attachment=True, filename=filename, content_type="application/zip"
    )
    response["Cache-Control"] = "no-store"
    return response
