"""The web sign-in's email-code challenge (see ``accounts.login_stages``).

Reached after the password, either from our ``EmailCodeStage`` (email is the only second
factor) or from allauth's authenticator-app page ("Email me a code instead"). The pending
sign-in is allauth's own (kept in the session); a right code finishes the current stage and
allauth completes the sign-in, a wrong one shows an inline error.
"""

from __future__ import annotations

from typing import Any

from allauth.account.internal.decorators import login_not_required
from allauth.account.internal.templatekit import get_entrance_context_data
from allauth.account.stages import LoginStage, LoginStageController
from allauth.account.utils import get_login_redirect_url
from allauth.mfa.base import views as allauth_mfa_views
from allauth.mfa.stages import AuthenticateStage
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from accounts.login_stages import EMAIL_CODE_STAGE
from accounts.services import mfa as mfa_services
from leanvibe.access import public_page
from leanvibe.errors import DomainError

# The stages this page may finish: ours, or allauth's when the member chose email instead.
STAGES = (EMAIL_CODE_STAGE, AuthenticateStage.key)


def _pending_stage(request: HttpRequest) -> LoginStage | None:
    for key in STAGES:
        stage = LoginStageController.enter(request, key)
        if stage is not None:
            user = stage.login.user
            if user is not None and mfa_services.user_email_device(user) is not None:  # type: ignore[arg-type]
                return stage
    return None


@public_page("the second step of a sign-in: the pending sign-in in the session is the credential")
@never_cache
@login_not_required
def mfa_email_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return HttpResponseRedirect(get_login_redirect_url(request))
    stage = _pending_stage(request)
    if stage is None:
        return HttpResponseRedirect(reverse("account_login"))
    user: Any = stage.login.user
    context: dict[str, Any] = {**get_entrance_context_data(request), "email": user.email, "error": None}
    status = 200
    if request.method == "POST":
        if request.POST.get("action") == "send":
            sent = mfa_services.mfa_email_login_send(user=user)
            context["notice"] = (
                "We emailed you a new code."
                if sent
                else "A code was sent less than a minute ago: check your inbox or wait a minute."
            )
        else:
            try:
                mfa_services.mfa_email_login_check(
                    user=user, code=str(request.POST.get("code", ""))[:64], request=request
                )
            except DomainError as exc:
                context["error"] = exc.detail
                status = 429 if exc.status == 429 else 200
            else:
                return stage.exit()
    elif stage.key == EMAIL_CODE_STAGE:
        context["notice"] = f"We emailed a sign-in code to {user.email}."
    return render(request, "accounts/mfa/email.html", context, status=status)


class AuthenticateView(allauth_mfa_views.AuthenticateView):
    """allauth's authenticator-app challenge, telling its page whether email codes are an option."""

    def get_context_data(self, **kwargs: Any) -> dict:
        ret: dict = super().get_context_data(**kwargs)
        user: Any = self.stage.login.user
        ret["email_code_available"] = mfa_services.user_email_device(user) is not None
        return ret


authenticate_view = public_page("the second step of a sign-in: allauth checks the pending sign-in")(
    AuthenticateView.as_view()
)
