"""Members and invitations pages, and the public invitation-acceptance page.

Access: every page but the acceptance one goes through ``accounts.permissions.role_required``.
Members see a read-only list of their colleagues; admins and owners manage members and
invitations. The rules on who may change whom are in the services (``accounts.permissions``),
so a crafted form post gets the same refusal as the API.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors
from accounts.forms import AcceptInvitationForm, InvitationActionForm, InvitationForm, MemberActionForm
from accounts.models import Role, User
from accounts.permissions import can_manage_members, role_required
from accounts.services import invitations as invitation_services
from accounts.services import members as member_services
from leanvibe.access import public_page
from leanvibe.errors import DomainError

_LOGIN_BACKEND = "allauth.account.auth_backends.AuthenticationBackend"


def _actor(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@role_required(Role.MEMBER)
def members_page(request: HttpRequest) -> HttpResponse:
    actor = _actor(request)
    members = list(selectors.member_list())
    context = {
        "members": members,
        "active_count": sum(1 for m in members if m.is_active),
        "can_manage": can_manage_members(actor),
        "role_choices": InvitationForm(actor=actor).fields["role"].choices,  # type: ignore[attr-defined]
        "is_owner": actor.role == Role.OWNER,
    }
    return render(request, "accounts/members/list.html", context)


@role_required(Role.ADMIN)
@require_POST
def member_update_view(request: HttpRequest, user_id: int) -> HttpResponse:
    member = selectors.member_get(user_id)
    if member is None:
        raise Http404("Member not found")
    form = MemberActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(m) for errs in form.errors.values() for m in errs))
        return redirect("members")
    action = form.cleaned_data["action"]
    common = {"tenant": request.tenant, "actor": _actor(request), "member": member, "request": request}  # type: ignore[attr-defined]
    try:
        if action == "role":
            member_services.member_update(role=form.cleaned_data["role"], **common)
            messages.success(request, f"{member.email} is now {Role(member.role).label.lower()}.")
        elif action == "deactivate":
            member_services.member_deactivate(**common)
            messages.success(request, f"{member.email} is deactivated and signed out everywhere.")
        else:
            member_services.member_reactivate(**common)
            messages.success(request, f"{member.email} is active again.")
    except DomainError as exc:
        messages.error(request, exc.detail)
    return redirect("members")


def _invitations(request: HttpRequest, form: InvitationForm, status: int = 200) -> HttpResponse:
    invitations = selectors.invitation_list()
    context = {
        "form": form,
        "pending": [i for i in invitations if i.status in ("pending", "expired")],
        "closed": [i for i in invitations if i.status in ("accepted", "revoked")],
    }
    return render(request, "accounts/invitations/list.html", context, status=status)


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def invitations_page(request: HttpRequest) -> HttpResponse:
    actor = _actor(request)
    if request.method != "POST":
        return _invitations(request, InvitationForm(actor=actor))
    form = InvitationForm(request.POST, actor=actor)
    if form.is_valid():
        try:
            sent = invitation_services.invitation_create(
                tenant=request.tenant,  # type: ignore[attr-defined]
                actor=actor,
                request=request,
                **form.cleaned_data,
            )
        except DomainError as exc:
            form.add_error("email" if exc.code in ("email_taken", "invitation_pending") else None, exc.detail)
            if exc.code == "rate_limited":
                response = _invitations(request, form, status=429)
                response["Retry-After"] = str(exc.extra["retry_after"])
                return response
        else:
            messages.success(request, f"Invitation sent to {sent.invitation.email}.")
            return redirect("invitations")
    return _invitations(request, form, status=400)


@role_required(Role.ADMIN)
@require_POST
def invitation_update_view(request: HttpRequest, invitation_id: uuid.UUID) -> HttpResponse:
    invitation = selectors.invitation_get(invitation_id)
    if invitation is None:
        raise Http404("Invitation not found")
    form = InvitationActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose resend or revoke.")
        return redirect("invitations")
    try:
        if form.cleaned_data["action"] == "resend":
            invitation_services.invitation_resend(
                tenant=request.tenant,  # type: ignore[attr-defined]
                actor=_actor(request),
                invitation=invitation,
                request=request,
            )
            messages.success(request, f"A new invitation link was sent to {invitation.email}.")
        else:
            invitation_services.invitation_revoke(
                actor=_actor(request), invitation=invitation, request=request
            )
            messages.success(request, f"The invitation of {invitation.email} is revoked.")
    except DomainError as exc:
        messages.error(request, exc.detail)
    return redirect("invitations")


@public_page("an invitee has no account yet: the secret in the link is the credential")
@require_http_methods(["GET", "POST"])
def invitation_accept_view(request: HttpRequest, secret: str) -> HttpResponse:
    """Public within the tenant's host: the secret in the link is the credential. A link of
    another tenant is unknown in this schema and so refused like any invalid one."""
    invitation = selectors.invitation_by_secret(secret)
    problem = invitation_services.invitation_problem(invitation)
    if problem is not None or invitation is None:
        return _invalid(request, problem)
    form = AcceptInvitationForm(request.POST or None, email=invitation.email)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                user = invitation_services.invitation_accept(
                    tenant=request.tenant,  # type: ignore[attr-defined]
                    secret=secret,
                    password=form.cleaned_data["password1"],
                    username=form.cleaned_data["username"],
                    request=request,
                )
            except DomainError as exc:
                if exc.code.startswith("invitation_"):
                    return _invalid(request, exc)
                form.add_error(None, exc.detail)
            else:
                login(request, user, backend=_LOGIN_BACKEND)
                messages.success(request, f"Welcome to {request.tenant.organization_name}!")  # type: ignore[attr-defined]
                return redirect("dashboard")
    context = {"form": form, "invitation": invitation, "role": Role(invitation.role).label}
    return render(request, "accounts/invitations/accept.html", context, status=status)


def _invalid(request: HttpRequest, problem: DomainError | None) -> HttpResponse:
    detail = problem.detail if problem else "This invitation link is not valid."
    code = problem.code if problem else "invitation_invalid"
    return render(
        request,
        "accounts/invitations/invalid.html",
        {"detail": detail, "code": code},
        status=problem.status if problem else 404,
    )
