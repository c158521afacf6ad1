"""The member's own sessions page: web sign-ins and API tokens, each of which can be ended."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Role, User
from accounts.permissions import role_required
from accounts.services import tokens
from leanvibe.errors import DomainError


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@role_required(Role.MEMBER)
def sessions_page(request: HttpRequest) -> HttpResponse:
    sessions = tokens.sessions_list(user=_user(request), current_session_key=request.session.session_key)
    return render(request, "accounts/sessions/list.html", {"sessions": sessions})


@role_required(Role.MEMBER)
@require_POST
def session_end_view(request: HttpRequest, session_id: str) -> HttpResponse:
    current = request.session.session_key
    try:
        kind = tokens.session_end(
            user=_user(request), session_id=session_id[:64], actor=_user(request), request=request
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("sessions")
    if kind == tokens.SessionKind.WEB and current and not request.session.exists(current):
        return redirect("account_login")  # the member ended the session of this very browser
    messages.success(
        request, "Session ended: it no longer has access." if kind == "web" else "API token revoked."
    )
    return redirect("sessions")
