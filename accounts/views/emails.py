"""allauth's email addresses page, with one rule more: only a verified address can become the
primary one. allauth lets an account whose addresses are all unverified pick any of them; here
the primary address is the account's sign-in name and what single sign-on matches, so an
address its holder has not proven must never take that place."""

from __future__ import annotations

from typing import Any

from allauth.account.views import EmailView
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from accounts.models import AuditEvent, Role
from accounts.permissions import role_required
from accounts.services.audit import audit_record


class VerifiedPrimaryEmailView(EmailView):
    def _action_primary(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | None:
        address = self._get_email_address(request)
        if address is not None and not address.verified:
            messages.error(
                request,
                f"{address.email} is not verified yet: confirm it from the email we sent before making "
                "it your primary address.",
            )
            return HttpResponseRedirect(self.get_success_url())
        response: HttpResponse | None = super()._action_primary(request, *args, **kwargs)
        if address is not None and response is not None:
            audit_record(type=AuditEvent.Type.EMAIL_CHANGED, request=request, email=address.email)
        return response


email_view = role_required(Role.MEMBER)(VerifiedPrimaryEmailView.as_view())
