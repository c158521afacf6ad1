"""Sign-in with email and password (the API's ``POST /api/v1/auth/login``)."""

from __future__ import annotations

from django.contrib.auth.hashers import make_password
from django.http import HttpRequest

from accounts.emails import email_canonical
from accounts.models import AuditEvent, User
from accounts.services import IssuedTokens, is_staff_schema, tokens_issue
from accounts.services.audit import audit_record
from accounts.services.mfa import mfa_check_login, mfa_check_staff_login
from accounts.sso.settings import password_login_check
from leanvibe.errors import DomainError


def auth_login(
    *, email: str, password: str, mfa_code: str | None = None, request: HttpRequest | None = None
) -> IssuedTokens:
    """Check credentials in the current schema and issue tokens; 401 on any mismatch.

    The email is looked up in its canonical form (``accounts.emails``). A member with two-factor
    must also send ``mfa_code`` (422 ``mfa_required`` without it, 401 when wrong: see
    ``accounts.services.mfa.mfa_check_login``); platform staff always (``mfa_check_staff_login``).
    In an SSO-only tenant every attempt but an owner's right password is the same 403
    ``sso_required`` (``accounts.sso.settings.password_login_check``)."""
    canonical = email_canonical(email)
    user = User.objects.filter(email=canonical).first()
    if user is None:
        make_password(password)  # spend the same time as a real check: no user enumeration
        password_valid = False
    else:
        password_valid = user.check_password(password) and user.is_active
    try:  # "SSO only" tenants: the same 403 whether or not the password was right
        password_login_check(
            tenant=getattr(request, "tenant", None), user=user, password_valid=password_valid
        )
    except DomainError as refused:
        audit_record(
            type=AuditEvent.Type.LOGIN_FAILED,
            request=request,
            actor_email=canonical[:254],
            method="password",
            reason=refused.code,
        )
        raise
    if user is not None and password_valid:
        # Platform staff (public schema) always need the code of their django-otp TOTP device,
        # the admin console's; tenant members theirs, if they have a second factor.
        if is_staff_schema():
            mfa_method: str | None = mfa_check_staff_login(user=user, code=mfa_code, request=request)
        else:
            mfa_method = mfa_check_login(user=user, code=mfa_code, request=request)
        method = f"password+{mfa_method}" if mfa_method else "password"
        audit_record(type=AuditEvent.Type.LOGIN_SUCCEEDED, request=request, actor=user, method=method)
        return tokens_issue(user=user, request=request)
    audit_record(
        type=AuditEvent.Type.LOGIN_FAILED,
        request=request,
        actor_email=canonical[:254],
        method="password",
    )
    raise DomainError("invalid_credentials", "Email or password is incorrect.", status=401)
