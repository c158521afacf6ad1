"""Base classes every API view derives from. Access rules live here and only here.

``TenantAPIView`` serves the tenant of the request (host or ``X-Tenant-ID``), requires a
bearer token minted in that tenant's schema, and a role per HTTP method (``role_map``, in the
manner of Sentry's ``scope_map``). ``PlatformAPIView`` declares per method whether anyone or
only platform staff may call it (``access_map``). Subclasses may raise the role a method needs
but cannot replace authentication or permissions: a class anywhere in a view's MRO (a mixin
included) defining any of the hooks below, other than these base classes and DRF's own, raises
``TypeError`` at import time (PostHog's ``TeamAndOrgViewSetMixin`` does the same). DRF's
defaults (``settings.REST_FRAMEWORK``) authenticate nobody and deny everything, so a view on
a plain ``APIView`` serves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, ClassVar

from django.conf import settings
from django.utils.module_loading import import_string
from rest_framework import exceptions, serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from leanvibe.access import Access

# The kernel imports no app: the token authentication, the roles and the two-factor rule come
# from the members' app by name, through settings (``API_*`` in leanvibe/settings.py).
BearerTokenAuthentication = import_string(settings.API_AUTHENTICATION_CLASS)
OptionalBearerTokenAuthentication = import_string(settings.API_OPTIONAL_AUTHENTICATION_CLASS)
# Lowest first; a role not listed ranks 0.
ROLE_RANK: dict[str, int] = {role: rank for rank, role in enumerate(settings.API_ROLES, start=1)}
LOWEST_ROLE: str = settings.API_ROLES[0]
HIGHEST_ROLE: str = settings.API_ROLES[-1]


@cache
def _api_call_meter() -> Callable[..., None]:
    meter: Callable[..., None] = import_string(settings.API_USAGE_METER)
    return meter


@cache
def _mfa_enrollment_required() -> Callable[..., bool]:
    check: Callable[..., bool] = import_string(settings.API_MFA_ENROLLMENT_CHECK)
    return check


_LOCKED_ATTRIBUTES = (
    "dispatch",
    "authentication_classes",
    "permission_classes",
    "initial",
    "get_authenticators",
    "get_permissions",
    "check_permissions",
    "check_object_permissions",
    "perform_authentication",
)


class TenantNotFound(exceptions.NotFound):
    default_detail = "This endpoint needs a tenant: use the tenant's host or the X-Tenant-ID header."
    default_code = "tenant_not_found"


class RequiresTenant(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        if getattr(request, "tenant", None) is None:
            raise TenantNotFound()
        return True


class HasRoleForMethod(BasePermission):
    message = "Your role does not allow this action."

    def has_permission(self, request: Request, view: APIView) -> bool:
        required = view.role_map.get(request.method or "", HIGHEST_ROLE)  # type: ignore[attr-defined]
        return ROLE_RANK.get(getattr(request.user, "role", ""), 0) >= ROLE_RANK[required]


class IsAuthenticatedUser(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        if not (request.user and request.user.is_authenticated):
            raise exceptions.NotAuthenticated("Authentication credentials were not provided.")
        return True


class MfaEnrollmentRequired(exceptions.PermissionDenied):
    default_detail = (
        "Your organisation requires two-factor authentication: enrol with "
        "POST /api/v1/auth/mfa/setup and /api/v1/auth/mfa/verify first."
    )
    default_code = "mfa_enrollment_required"


class EnrolledInMfaIfRequired(BasePermission):
    """The tenant's "require two-factor for everyone" switch: a member without a second factor
    may only call the enrolment endpoints (``mfa_enrollment_exempt = True``)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if getattr(view, "mfa_enrollment_exempt", False):
            return True
        if _mfa_enrollment_required()(tenant=getattr(request, "tenant", None), user=request.user):
            raise MfaEnrollmentRequired()
        return True


def _is_trusted(klass: type) -> bool:
    """The classes that may define the locked hooks: this module's and DRF's ``APIView`` chain."""
    return klass.__module__ == __name__ or klass in APIView.__mro__


class _LockedAPIView(APIView):
    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """DRF's checks (authentication, permissions, throttles), then the usage meter: an
        authenticated request for a tenant, once admitted, is counted (``API_USAGE_METER``: one
        Redis round trip), and refused with 429 over the plan's hard limit before the view runs.
        """
        super().initial(request, *args, **kwargs)
        tenant = getattr(request, "tenant", None)
        if tenant is not None and request.user and request.user.is_authenticated:
            _api_call_meter()(tenant=tenant, path=request.path, method=request.method or "GET")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [
            f"{klass.__qualname__}.{name}" if klass is not cls else name
            for klass in cls.__mro__
            if not _is_trusted(klass)
            for name in _LOCKED_ATTRIBUTES
            if name in vars(klass)
        ]
        if overridden:
            raise TypeError(
                f"{cls.__name__} may not override {', '.join(overridden)}: access rules are set "
                "by its base class (leanvibe.api.base)."
            )


class TenantAPIView(_LockedAPIView):
    """A tenant-scoped endpoint: tenant, then authentication, then role."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [RequiresTenant, IsAuthenticatedUser, HasRoleForMethod, EnrolledInMfaIfRequired]
    # Only the two-factor enrolment endpoints set this (accounts.api.mfa).
    mfa_enrollment_exempt: ClassVar[bool] = False
    role_map: ClassVar[Mapping[str, str]] = dict.fromkeys(
        ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"), LOWEST_ROLE
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method, role in cls.role_map.items():
            if ROLE_RANK[role] < ROLE_RANK[LOWEST_ROLE]:
                raise TypeError(f"{cls.__name__}.role_map[{method!r}] is below member")


class IsPlatformStaff(BasePermission):
    message = "Only platform staff may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return getattr(request, "tenant", None) is None and bool(request.user.is_staff)


class StaffAPIView(_LockedAPIView):
    """A platform endpoint on the public host for platform staff, with a bearer token minted on
    the public host (``POST /api/v1/auth/login`` there)."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsAuthenticatedUser, IsPlatformStaff]


class HasAccessForMethod(BasePermission):
    """``view.access_map[method]``: ``Access.PUBLIC`` lets anyone in; ``Access.MEMBER`` a
    signed-in member on a tenant's host (or ``X-Tenant-ID``), held to the tenant's two-factor
    rule, and platform staff on the public host (401 without credentials); ``Access.STAFF``, or
    a method the map does not name, only platform staff on the public host (else 403, whether
    or not the caller sent a token)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        rule = view.access_map.get(request.method or "", Access.STAFF)  # type: ignore[attr-defined]
        if rule == Access.PUBLIC:
            return True
        if rule == Access.MEMBER:
            IsAuthenticatedUser().has_permission(request, view)
            if getattr(request, "tenant", None) is not None:
                return EnrolledInMfaIfRequired().has_permission(request, view)
        user = request.user
        if getattr(request, "tenant", None) is None and user and user.is_authenticated and user.is_staff:
            return True
        raise exceptions.PermissionDenied(IsPlatformStaff.message)


class PlatformAPIView(_LockedAPIView):
    """A platform endpoint whose access depends on the HTTP method, declared in ``access_map``:
    ``Access.PUBLIC`` (anyone; the class docstring says why), ``Access.MEMBER`` (a member on
    their tenant's host, or platform staff on the public host) or ``Access.STAFF`` (platform
    staff on the public host). A method the map does not name is staff-only. A valid token identifies
    its user; an invalid one is ignored, as on ``DangerouslyPublicAPIView``."""

    authentication_classes = [OptionalBearerTokenAuthentication]
    permission_classes = [HasAccessForMethod]
    access_map: ClassVar[Mapping[str, Access]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method, rule in cls.access_map.items():
            if Access(rule) not in (Access.PUBLIC, Access.MEMBER, Access.STAFF):
                raise TypeError(f"{cls.__name__}.access_map[{method!r}] must be public, member or staff")
            if rule == Access.PUBLIC and not (cls.__doc__ or "").strip():
                raise TypeError(f"{cls.__name__} lets anyone call {method}: its docstring must say why")


class DangerouslyPublicAPIView(_LockedAPIView):
    """An endpoint anyone may call (login, single sign-on). Each use must say why in its
    docstring. A valid token still identifies its user; an invalid one is ignored rather than
    refused."""

    authentication_classes = [OptionalBearerTokenAuthentication]
    permission_classes: list[type[BasePermission]] = []


class StrictSerializer(serializers.Serializer):
    """Input serializer that refuses anything but a JSON object and names unknown fields."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["Expected a JSON object."]}, code="invalid"
            )
        errors: dict[str, list[str]] = {name: ["Unknown field."] for name in set(data) - set(self.fields)}
        for name, field in self.fields.items():
            # DRF would quietly turn 42 or true into "42" / "True": a wrong type is an error here.
            value = data.get(name)
            is_text = isinstance(field, serializers.CharField | serializers.ChoiceField)
            if is_text and value is not None and not isinstance(value, str):
                errors[name] = ["Expected a string."]
        if errors:
            raise serializers.ValidationError(dict(sorted(errors.items())), code="invalid")
        return super().to_internal_value(data)
