"""Data exports: the request, the archive the worker writes, the signed download link, the
retention sweep.

The archive is written under ``EXPORTS_ROOT/<schema>/<export id>.zip`` (a ``.part`` file
renamed once complete), outside the agents' workspaces, so it counts against no quota. The
download link is signed (``django.core.signing``, salted, naming the tenant and the export)
and valid ``EXPORTS_LINK_MAX_AGE`` seconds from when the API or the page hands it out: a link
of one tenant opens nothing in another, a forged or expired one nothing at all. Archives are
deleted ``EXPORTS_KEEP_DAYS`` after they are written; the row stays, ``expired``.
"""

from __future__ import annotations

import logging
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from accounts.exports.registry import ExportArchive, export_parts
from accounts.models import AuditEvent, DataExport, User
from accounts.services.audit import audit_record
from leanvibe.errors import DomainError
from tenants.links import tenant_url
from tenants.models import Tenant

logger = logging.getLogger(__name__)

_SIGNING_SALT = "accounts.exports.download"
_LOCK_NAMESPACE = 0x4558  # "EX": advisory locks of data export requests, one per schema
ACTIVE = (DataExport.Status.PENDING, DataExport.Status.RUNNING)


def exports_root() -> Path:
    return Path(settings.EXPORTS_ROOT)


def _archive_path(export: DataExport, schema_name: str) -> Path:
    return exports_root() / schema_name / f"{export.id}.zip"


# --- request --------------------------------------------------------------------------------
def data_export_request(*, tenant: Tenant, by: User, request: HttpRequest | None = None) -> DataExport:
    """Queue an export of everything of ``tenant`` (the caller checked ``by`` is an owner). One
    at a time: another while one is pending or running is 409 ``export_in_progress``."""
    with transaction.atomic():
        # One lock per schema: two requests at once (two owners) cannot both find none running.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", [_LOCK_NAMESPACE])
        running = DataExport.objects.filter(status__in=ACTIVE).first()
        if running is not None:
            raise DomainError(
                "export_in_progress",
                "An export is already being written: wait for it to finish.",
                status=409,
                export_id=str(running.id),
            )
        export = DataExport.objects.create(
            requested_by=by, requested_by_email=by.email, parts_total=len(export_parts())
        )
        audit_record(
            type=AuditEvent.Type.EXPORT_REQUESTED, request=request, actor=by, export_id=str(export.id)
        )
        tenant_id, export_id = str(tenant.pk), str(export.id)

        def send() -> None:
            from accounts.tasks import data_export_build

            data_export_build.delay(tenant_id, export_id)

        transaction.on_commit(send)
    return export


# --- the archive (in the worker) ------------------------------------------------------------
def _claim(export_id: str) -> DataExport | None:
    """pending → running, once (a message delivered twice builds one archive)."""
    claimed = DataExport.objects.filter(id=export_id, status=DataExport.Status.PENDING).update(
        status=DataExport.Status.RUNNING, started_at=timezone.now(), parts_done=0
    )
    return DataExport.objects.get(id=export_id) if claimed else None


def data_export_build(*, tenant: Tenant, export_id: str) -> DataExport | None:
    """Write the archive of a pending export, part by part, recording the progress after each
    (outside any transaction, so the page's poll sees it). Runs in the tenant's schema."""
    export = _claim(export_id)
    if export is None:
        return None
    parts = export_parts()
    final = _archive_path(export, tenant.schema_name)
    partial = final.with_suffix(".zip.part")
    DataExport.objects.filter(id=export.id).update(parts_total=len(parts))
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zip_file:
            archive = ExportArchive(zip_file)
            archive.json("export.json", _manifest(tenant, export, [p.name for p in parts]))
            for done, part in enumerate(parts, start=1):
                part.write(tenant, archive)
                DataExport.objects.filter(id=export.id).update(parts_done=done)
        partial.replace(final)
    except Exception:
        logger.exception("data export %s of %s failed", export.id, tenant.schema_name)
        partial.unlink(missing_ok=True)
        DataExport.objects.filter(id=export.id).update(
            status=DataExport.Status.FAILED,
            error="The archive could not be written. Try again; if it fails again, contact support.",
            finished_at=timezone.now(),
        )
        export.refresh_from_db()
        return export
    DataExport.objects.filter(id=export.id).update(
        status=DataExport.Status.READY,
        file=str(final.relative_to(exports_root())),
        size=final.stat().st_size,
        parts_done=len(parts),
        finished_at=timezone.now(),
    )
    export.refresh_from_db()
    return export


def _manifest(tenant: Tenant, export: DataExport, parts: list[str]) -> dict[str, Any]:
    return {
        "organisation": tenant.organization_name,
        "subdomain": tenant.subdomain,
        "export_id": str(export.id),
        "requested_by": export.requested_by_email,
        "requested_at": export.created_at,
        "written_at": timezone.now(),
        "parts": parts,
    }


# --- the download link ----------------------------------------------------------------------
class _Signer(signing.TimestampSigner):
    """A timestamp signer whose time can be given (a link issued earlier, in tests)."""

    def __init__(self, issued_at: datetime | None = None) -> None:
        super().__init__(salt=_SIGNING_SALT)
        self._issued_at = issued_at

    def timestamp(self) -> str:
        if self._issued_at is None:
            return super().timestamp()
        return signing.b62_encode(int(self._issued_at.timestamp()))


def _link_value(tenant: Tenant, export_id: object) -> str:
    return f"{tenant.pk}.{export_id}"


def data_export_signature(*, tenant: Tenant, export: DataExport, issued_at: datetime | None = None) -> str:
    return _Signer(issued_at).sign(_link_value(tenant, export.id))


def data_export_download_url(
    *, tenant: Tenant, export: DataExport, issued_at: datetime | None = None
) -> str | None:
    """The signed link of a ready export (None otherwise), valid ``EXPORTS_LINK_MAX_AGE``."""
    if export.status != DataExport.Status.READY:
        return None
    path = reverse("data-export-download", kwargs={"export_id": export.id})
    query = urlencode({"signature": data_export_signature(tenant=tenant, export=export, issued_at=issued_at)})
    return tenant_url(tenant, f"{path}?{query}")


def data_export_link_expires_at() -> datetime:
    return timezone.now() + timedelta(seconds=settings.EXPORTS_LINK_MAX_AGE)


def data_export_for_link(*, tenant: Tenant, export_id: str, signature: str) -> tuple[DataExport, Path]:
    """The export and its archive a link opens, or a ``DomainError``: 404 for a link that is
    forged, of another tenant or of an unknown export, 410 for an expired link or archive."""
    not_found = DomainError("not_found", "No such download.", status=404)
    try:
        value = _Signer().unsign(signature, max_age=settings.EXPORTS_LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise DomainError(
            "link_expired",
            "This download link has expired: ask for a new one on the export page.",
            status=410,
        ) from None
    except signing.BadSignature:
        raise not_found from None
    if value != _link_value(tenant, export_id):
        raise not_found
    export = DataExport.objects.filter(id=export_id).first()
    if export is None:
        raise not_found
    if export.status == DataExport.Status.EXPIRED:
        raise DomainError("export_expired", "This export was deleted after its retention.", status=410)
    path = exports_root() / export.file
    if export.status != DataExport.Status.READY or not export.file or not path.is_file():
        raise not_found
    return export, path


def data_export_downloaded(*, request: HttpRequest, export: DataExport) -> None:
    """Record a download (it ticks the journey's step): by the signed-in member when the link
    is opened in their session, else by whoever holds the link."""
    audit_record(
        type=AuditEvent.Type.EXPORT_DOWNLOADED,
        request=request,
        export_id=str(export.id),
        requested_by=export.requested_by_email,
    )


# --- retention ------------------------------------------------------------------------------
def data_exports_expire(*, now: datetime | None = None) -> int:
    """Delete the archives of the current schema written more than ``EXPORTS_KEEP_DAYS`` ago;
    their rows stay, ``expired``. Returns how many were deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.EXPORTS_KEEP_DAYS)
    expired = 0
    old = DataExport.objects.filter(status=DataExport.Status.READY, finished_at__lt=cutoff)
    for export in old:
        if export.file:
            (exports_root() / export.file).unlink(missing_ok=True)
        DataExport.objects.filter(id=export.id, status=DataExport.Status.READY).update(
            status=DataExport.Status.EXPIRED, file="", deleted_at=timezone.now()
        )
        expired += 1
    return expired


# A pending export not started after this was lost with its message: sent again. A running one
# not finished after RUNNING_TIMEOUT lost its worker: failed (the owner asks again).
PENDING_RESEND_AFTER = timedelta(minutes=10)
RUNNING_TIMEOUT = timedelta(hours=2)


def data_exports_stuck(*, now: datetime | None = None) -> list[str]:
    """Fail the exports of the current schema whose worker was lost; return the ids of the
    pending ones to send again."""
    now = now or timezone.now()
    DataExport.objects.filter(status=DataExport.Status.RUNNING, started_at__lt=now - RUNNING_TIMEOUT).update(
        status=DataExport.Status.FAILED,
        error="The worker writing the archive stopped. Ask for a new export.",
        finished_at=now,
    )
    pending = DataExport.objects.filter(
        status=DataExport.Status.PENDING, created_at__lt=now - PENDING_RESEND_AFTER
    )
    return [str(export_id) for export_id in pending.values_list("id", flat=True)]
