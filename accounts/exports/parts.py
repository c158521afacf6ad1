"""The export parts accounts owns: the organisation and its settings, the members, the
invitations and the audit log. Fields are listed, never taken wholesale from the rows, so no
password hash, token hash or second-factor secret can slip into an archive."""

from __future__ import annotations

from accounts.audit_log import AuditFilters, audit_csv_lines, audit_event_list
from accounts.exports.registry import ExportArchive, ExportPart, export_part_register
from accounts.models import Invitation, User
from tenants.models import Tenant


def organisation_write(tenant: Tenant, archive: ExportArchive) -> None:
    archive.json(
        "organisation.json",
        {
            "id": str(tenant.pk),
            "name": tenant.organization_name,
            "subdomain": tenant.subdomain,
            "plan": tenant.plan,
            "billing_email": tenant.billing_email,
            "status": tenant.status,
            "created_at": tenant.created_at,
            "settings": tenant.typed_settings.to_stored(),
        },
    )


def members_write(tenant: Tenant, archive: ExportArchive) -> None:
    members = User.objects.order_by("date_joined", "id").values(
        "id", "email", "username", "full_name", "role", "is_active", "date_joined", "last_login"
    )
    archive.json("members.json", list(members))


def invitations_write(tenant: Tenant, archive: ExportArchive) -> None:
    invitations = [
        {
            "id": str(invitation.id),
            "email": invitation.email,
            "role": invitation.role,
            "invited_by": invitation.invited_by.email if invitation.invited_by else None,
            "created_at": invitation.created_at,
            "last_sent_at": invitation.last_sent_at,
            "expires_at": invitation.expires_at,
            "accepted_at": invitation.accepted_at,
            "revoked_at": invitation.revoked_at,
        }
        for invitation in Invitation.objects.select_related("invited_by").order_by("created_at")
    ]
    archive.json("invitations.json", invitations)


def audit_log_write(tenant: Tenant, archive: ExportArchive) -> None:
    archive.text("audit-log.csv", audit_csv_lines(audit_event_list(AuditFilters())))


def register() -> None:
    for part in (
        ExportPart("organisation", organisation_write, order=10),
        ExportPart("members", members_write, order=20),
        ExportPart("invitations", invitations_write, order=30),
        ExportPart("audit log", audit_log_write, order=900),
    ):
        export_part_register(part)
