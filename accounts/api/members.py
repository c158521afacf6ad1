"""Members and invitations API.

- ``GET /api/v1/users``, ``GET /api/v1/users/{id}``: any member (colleagues see each other);
- ``POST /api/v1/users``, ``PATCH /api/v1/users/{id}``: admins;
- ``DELETE /api/v1/users/{id}``: admins; deactivates the member (the row stays for the audit
  trail and can be reactivated with ``PATCH {"is_active": true}``);
- ``/api/v1/invitations`` (list, create), ``/api/v1/invitations/{id}`` (read, ``DELETE`` revokes),
  ``/api/v1/invitations/{id}/resend``: admins.

The role rules themselves (escalation, last owner) are in ``accounts.permissions``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors
from accounts.emails import CanonicalEmailSerializerField
from accounts.models import Invitation, Role, User
from accounts.services import invitations as invitation_services
from accounts.services import members as member_services
from leanvibe.api.base import StrictSerializer, TenantAPIView
from leanvibe.errors import DomainError
from leanvibe.validators import validate_no_control_characters

_ADMIN_WRITES: dict[str, Role] = {
    **{method: Role(role) for method, role in TenantAPIView.role_map.items()},
    "POST": Role.ADMIN,
    "PUT": Role.ADMIN,
    "PATCH": Role.ADMIN,
    "DELETE": Role.ADMIN,
}
_ADMIN_ONLY: dict[str, Role] = dict.fromkeys(TenantAPIView.role_map, Role.ADMIN)


class UserOutput(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "username", "role", "is_active"]


class UserCreateInput(StrictSerializer):
    email = CanonicalEmailSerializerField(max_length=254)
    username = serializers.CharField(
        max_length=150,
        required=False,
        allow_blank=True,
        default="",
        validators=[validate_no_control_characters],
    )
    password = serializers.CharField(max_length=4096, trim_whitespace=False)
    role = serializers.ChoiceField(choices=Role.choices, required=False, default=Role.MEMBER)


class UserUpdateInput(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    is_active = serializers.BooleanField(required=False)
    username = serializers.CharField(
        max_length=150, required=False, allow_blank=True, validators=[validate_no_control_characters]
    )

    def validate_is_active(self, value: Any) -> bool:
        if not isinstance(self.initial_data.get("is_active"), bool):
            raise serializers.ValidationError("Expected true or false.")
        return bool(value)


class InvitationOutput(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True)
    invited_by = serializers.SerializerMethodField()

    class Meta:
        model = Invitation
        fields = [
            "id",
            "email",
            "role",
            "status",
            "invited_by",
            "created_at",
            "last_sent_at",
            "expires_at",
            "accepted_at",
            "revoked_at",
        ]

    def get_invited_by(self, invitation: Invitation) -> str | None:
        return invitation.invited_by.email if invitation.invited_by else None


class InvitationCreateInput(StrictSerializer):
    email = CanonicalEmailSerializerField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, required=False, default=Role.MEMBER)


_INVITATION_STATUSES = ("pending", "accepted", "expired", "revoked")


def _user_or_404(user_id: str) -> User:
    user = selectors.member_get(user_id)
    if user is None:
        raise DomainError("not_found", "User not found.", status=404)
    return user


def _invitation_or_404(invitation_id: str) -> Invitation:
    invitation = selectors.invitation_get(invitation_id)
    if invitation is None:
        raise DomainError("not_found", "Invitation not found.", status=404)
    return invitation


class UserListApi(TenantAPIView):
    role_map: ClassVar[dict[str, Role]] = _ADMIN_WRITES

    def get(self, request: Request) -> Response:
        return Response({"results": UserOutput(selectors.member_list(), many=True).data})

    def post(self, request: Request) -> Response:
        data = UserCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = member_services.member_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=request.user,  # type: ignore[arg-type]
            request=request,
            **data.validated_data,
        )
        return Response(UserOutput(user).data, status=status.HTTP_201_CREATED)


class UserDetailApi(TenantAPIView):
    role_map: ClassVar[dict[str, Role]] = _ADMIN_WRITES

    def get(self, request: Request, user_id: str) -> Response:
        return Response(UserOutput(_user_or_404(user_id)).data)

    def patch(self, request: Request, user_id: str) -> Response:
        member = _user_or_404(user_id)
        data = UserUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        member = member_services.member_update(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=request.user,  # type: ignore[arg-type]
            member=member,
            request=request,
            **data.validated_data,
        )
        return Response(UserOutput(member).data)

    def delete(self, request: Request, user_id: str) -> Response:
        member_services.member_deactivate(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=request.user,  # type: ignore[arg-type]
            member=_user_or_404(user_id),
            request=request,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationListApi(TenantAPIView):
    role_map: ClassVar[dict[str, Role]] = _ADMIN_ONLY

    def get(self, request: Request) -> Response:
        status_filter = request.query_params.get("status")
        if status_filter is not None and status_filter not in _INVITATION_STATUSES:
            raise DomainError(
                "invalid_filter", f"status must be one of: {', '.join(_INVITATION_STATUSES)}.", status=400
            )
        invitations = selectors.invitation_list(status=status_filter)
        return Response({"results": InvitationOutput(invitations, many=True).data})

    def post(self, request: Request) -> Response:
        data = InvitationCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        sent = invitation_services.invitation_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=request.user,  # type: ignore[arg-type]
            request=request,
            **data.validated_data,
        )
        return Response(InvitationOutput(sent.invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetailApi(TenantAPIView):
    role_map: ClassVar[dict[str, Role]] = _ADMIN_ONLY

    def get(self, request: Request, invitation_id: str) -> Response:
        return Response(InvitationOutput(_invitation_or_404(invitation_id)).data)

    def delete(self, request: Request, invitation_id: str) -> Response:
        invitation_services.invitation_revoke(
            actor=request.user,  # type: ignore[arg-type]
            invitation=_invitation_or_404(invitation_id),
            request=request,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationResendApi(TenantAPIView):
    role_map: ClassVar[dict[str, Role]] = _ADMIN_ONLY

    def post(self, request: Request, invitation_id: str) -> Response:
        sent = invitation_services.invitation_resend(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=request.user,  # type: ignore[arg-type]
            invitation=_invitation_or_404(invitation_id),
            request=request,
        )
        return Response(InvitationOutput(sent.invitation).data)
