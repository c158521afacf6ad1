"""Models of the accounts app, one module per area, all in every tenant's schema (and public)."""

from accounts.models.audit import AuditEvent
from accounts.models.exports import DataExport
from accounts.models.invitations import Invitation
from accounts.models.users import ROLE_RANK, AuthToken, Role, User, UserManager

__all__ = ["ROLE_RANK", "AuditEvent", "AuthToken", "DataExport", "Invitation", "Role", "User", "UserManager"]
