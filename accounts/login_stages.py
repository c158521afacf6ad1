"""Email one-time codes as the second factor of the web sign-in.

allauth's own two-factor stage (``allauth.mfa.stages.AuthenticateStage``) challenges
authenticator apps only. This stage runs just before it (``AccountAdapter.get_login_stages``):
a member whose only second factor is a confirmed django-otp ``EmailDevice`` is emailed a code
(at most one a minute) and sent to ``accounts.views.mfa_email`` to type it. A member with an
authenticator app goes on to allauth's page, which offers "Email me a code instead" when an
email device is confirmed too (same view, entered from allauth's stage).
"""

from __future__ import annotations

from allauth.account.stages import LoginStage
from allauth.core.internal.httpkit import headed_redirect_response
from allauth.mfa.stages import AuthenticateStage
from django.http import HttpRequest

from accounts.services import mfa as mfa_services

EMAIL_CODE_STAGE = "leanvibe_mfa_email"
# Set on the request by a sign-in that has already had its second factor: a single sign-on whose
# IdP asserted MFA in a tenant that trusts it, or the link page where the code was just given.
SECOND_FACTOR_GIVEN_ATTRIBUTE = "_leanvibe_second_factor_given"


def second_factor_given(request: HttpRequest) -> bool:
    return bool(getattr(request, SECOND_FACTOR_GIVEN_ATTRIBUTE, False))


def second_factor_mark_given(request: HttpRequest) -> None:
    setattr(request, SECOND_FACTOR_GIVEN_ATTRIBUTE, True)


class SsoAwareAuthenticateStage(AuthenticateStage):
    """allauth's authenticator-app stage (same key and page), skipped only when this very
    sign-in already had its second factor (see ``SECOND_FACTOR_GIVEN_ATTRIBUTE``)."""

    def _should_handle(self, request: HttpRequest) -> bool:
        return not second_factor_given(request) and super()._should_handle(request)


class EmailCodeStage(LoginStage):
    key = EMAIL_CODE_STAGE
    urlname = "mfa-email"

    def handle(self) -> tuple:
        user = self.login.user
        if user is None or second_factor_given(self.request):
            return None, True
        methods = mfa_services.user_mfa_methods(user)  # type: ignore[arg-type]
        if mfa_services.MfaMethod.EMAIL not in methods or mfa_services.MfaMethod.TOTP in methods:
            return None, True  # no email codes, or allauth's stage challenges the app first
        self.state["email_sent"] = mfa_services.mfa_email_login_send(user=user)  # type: ignore[arg-type]
        return headed_redirect_response("mfa-email"), True
