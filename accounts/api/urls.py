"""Accounts API routes (mounted under /api/v1/ on both the public and the tenant hosts)."""

from django.urls import path

from accounts.api.audit import AuditEventListApi
from accounts.api.auth import (
    LogoutApi,
    PasswordChangeApi,
    RefreshApi,
    SessionDetailApi,
    SessionListApi,
    UserSessionsApi,
)
from accounts.api.exports import ExportDetailApi, ExportListApi
from accounts.api.members import (
    InvitationDetailApi,
    InvitationListApi,
    InvitationResendApi,
    UserDetailApi,
    UserListApi,
)
from accounts.api.mfa import (
    MfaApi,
    MfaEmailApi,
    MfaEmailVerifyApi,
    MfaSetupApi,
    MfaVerifyApi,
    SecuritySettingsApi,
)
from accounts.api.sso import (
    SsoCallbackApi,
    SsoInitiateApi,
    SsoLinkApi,
    SsoProviderDetailApi,
    SsoProviderListApi,
    SsoSettingsApi,
)
from accounts.api.views import LoginApi

urlpatterns = [
    path("auth/login", LoginApi.as_view(), name="api-login"),
    path("auth/refresh", RefreshApi.as_view(), name="api-refresh"),
    path("auth/logout", LogoutApi.as_view(), name="api-logout"),
    path("auth/password", PasswordChangeApi.as_view(), name="api-password"),
    path("auth/sessions", SessionListApi.as_view(), name="api-sessions"),
    path("auth/sessions/<str:session_id>", SessionDetailApi.as_view(), name="api-session"),
    path("users/<str:user_id>/sessions", UserSessionsApi.as_view(), name="api-user-sessions"),
    path("audit-events", AuditEventListApi.as_view(), name="api-audit-events"),
    path("exports", ExportListApi.as_view(), name="api-exports"),
    path("exports/<str:export_id>", ExportDetailApi.as_view(), name="api-export"),
    path("auth/mfa", MfaApi.as_view(), name="api-mfa"),
    path("auth/mfa/setup", MfaSetupApi.as_view(), name="api-mfa-setup"),
    path("auth/mfa/verify", MfaVerifyApi.as_view(), name="api-mfa-verify"),
    path("auth/mfa/email", MfaEmailApi.as_view(), name="api-mfa-email"),
    path("auth/mfa/email/verify", MfaEmailVerifyApi.as_view(), name="api-mfa-email-verify"),
    path("auth/security", SecuritySettingsApi.as_view(), name="api-security"),
    path("auth/sso/providers", SsoProviderListApi.as_view(), name="api-sso-providers"),
    path("auth/sso/providers/<str:provider_id>", SsoProviderDetailApi.as_view(), name="api-sso-provider"),
    path("auth/sso/settings", SsoSettingsApi.as_view(), name="api-sso-settings"),
    path("auth/sso/initiate", SsoInitiateApi.as_view(), name="api-sso-initiate"),
    path("auth/sso/callback", SsoCallbackApi.as_view(), name="api-sso-callback"),
    path("auth/sso/link", SsoLinkApi.as_view(), name="api-sso-link"),
    path("users", UserListApi.as_view(), name="api-users"),
    path("users/<str:user_id>", UserDetailApi.as_view(), name="api-user"),
    path("invitations", InvitationListApi.as_view(), name="api-invitations"),
    path("invitations/<str:invitation_id>", InvitationDetailApi.as_view(), name="api-invitation"),
    path(
        "invitations/<str:invitation_id>/resend", InvitationResendApi.as_view(), name="api-invitation-resend"
    ),
]
