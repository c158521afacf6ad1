"""A tenant's site: its dashboard and pages, sign-in, and the tenant API."""

from django.urls import include, path

from accounts.views import audit as audit_views
from accounts.views import emails as email_views
from accounts.views import exports as export_views
from accounts.views import login as login_views
from accounts.views import members as member_views
from accounts.views import mfa_email as mfa_email_views
from accounts.views import sessions as session_views
from accounts.views import sso as sso_views
from agents import views as agent_views
from billing import views as billing_views

urlpatterns = [
    path("", agent_views.dashboard, name="dashboard"),
    path("projects/", agent_views.project_create_view, name="project-create"),
    path("projects/<uuid:project_id>/", agent_views.project_update_view, name="project-update"),
    path("tasks/", agent_views.task_list_view, name="tasks"),
    path("tasks/new/", agent_views.task_create_view, name="task-create"),
    path("tasks/<uuid:task_id>/", agent_views.task_detail_view, name="task-detail"),
    path("tasks/<uuid:task_id>/events/", agent_views.task_events_view, name="task-events"),
    path("tasks/<uuid:task_id>/cancel/", agent_views.task_cancel_view, name="task-cancel"),
    path("tasks/<uuid:task_id>/download/", agent_views.task_download_view, name="task-download"),
    path("members/", member_views.members_page, name="members"),
    path("members/<int:user_id>/", member_views.member_update_view, name="member-update"),
    path("members/invitations/", member_views.invitations_page, name="invitations"),
    path(
        "members/invitations/<uuid:invitation_id>/",
        member_views.invitation_update_view,
        name="invitation-update",
    ),
    path("invitations/accept/<str:secret>/", member_views.invitation_accept_view, name="invitation-accept"),
    path("account/sessions/", session_views.sessions_page, name="sessions"),
    path("account/sessions/<str:session_id>/end/", session_views.session_end_view, name="session-end"),
    path("audit/", audit_views.audit_log_page, name="audit-log"),
    path("audit/csv/", audit_views.audit_log_csv_view, name="audit-log-csv"),
    path("settings/export/", export_views.exports_page, name="data-exports"),
    path(
        "exports/<uuid:export_id>/download/",
        export_views.data_export_download_view,
        name="data-export-download",
    ),
    path("billing/", billing_views.billing_page, name="billing"),
    path("billing/portal/", billing_views.billing_portal_view, name="billing-portal"),
    path("billing/cancel/", billing_views.billing_cancel_view, name="billing-cancel"),
    path("billing/resume/", billing_views.billing_resume_view, name="billing-resume"),
    path("billing/change/", billing_views.billing_change_view, name="billing-change"),
    path("billing/subscribe/", billing_views.billing_subscribe_view, name="billing-subscribe"),
    # allauth's sign-in view behind the brute-force protection the API login has.
    path("accounts/login/", login_views.login_view, name="account_login"),
    # allauth's email page, where only a verified address may become the primary one.
    path("accounts/email/", email_views.email_view, name="account_email"),
    # Single sign-on: our OIDC flow (nonce + PKCE) and SAML finish step on allauth's own paths.
    path("accounts/oidc/<str:provider_id>/login/", sso_views.oidc_login, name="openid_connect_login"),
    path(
        "accounts/oidc/<str:provider_id>/login/callback/",
        sso_views.oidc_callback,
        name="openid_connect_callback",
    ),
    path(
        "accounts/saml/<str:organization_slug>/acs/finish/", sso_views.saml_finish_acs, name="saml_finish_acs"
    ),
    # Email codes as the second factor of the web sign-in (accounts.login_stages).
    path("accounts/2fa/email/", mfa_email_views.mfa_email_view, name="mfa-email"),
    path("accounts/2fa/authenticate/", mfa_email_views.authenticate_view, name="mfa_authenticate"),
    path("sso/", sso_views.sso_choose, name="sso-choose"),
    path("sso/link/", sso_views.sso_link_page, name="sso-link"),
    path("settings/sso/", sso_views.sso_settings_page, name="sso-settings"),
    path("settings/sso/only/", sso_views.sso_only_view, name="sso-only"),
    path(
        "settings/sso/<str:provider_id>/delete/",
        sso_views.sso_provider_delete_view,
        name="sso-provider-delete",
    ),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("leanvibe.api.urls")),
]

handler400 = "leanvibe.views.bad_request"
handler403 = "leanvibe.views.permission_denied"
handler404 = "leanvibe.views.not_found"
handler500 = "leanvibe.views.server_error"
