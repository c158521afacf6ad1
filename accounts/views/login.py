"""The sign-in forms, behind the same brute-force protection as the API
(``accounts.services.throttle``): slowed after failures, then refused with a 429 page and
``Retry-After`` until the lock expires, whatever the password. Failures are counted by the
throttle's ``user_login_failed`` receiver.

- a tenant's members: allauth's own view (whose ``login_failed`` rate limit stays on as well);
- platform staff: the admin console's ``/admin/login/`` (Django's admin login with django-otp's
  form, ``leanvibe.admin_forms``), routed here first on the public site.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from allauth.account.views import LoginView
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from accounts.services import throttle
from accounts.services.passwords import password_changed_record
from leanvibe.access import public_page, staff_page
from leanvibe.http import client_address


def locked_response(request: HttpRequest, retry_after: int) -> HttpResponse:
    response = render(
        request,
        "429.html",
        {"retry_after": retry_after, "retry_minutes": max(1, -(-retry_after // 60))},
        status=429,
    )
    response["Retry-After"] = str(retry_after)
    return response


def _throttled_post(
    request: HttpRequest,
    email: str,
    sign_in: Callable[[], HttpResponse],
    *,
    signed_in: Callable[[HttpResponse], bool],
) -> HttpResponse:
    """Run the sign-in ``sign_in`` unless the account or the address is locked (the same 429
    page, right password or not); answer 429 too if this attempt was the failure that locked it."""
    ip = client_address(request)
    try:
        throttle.login_attempt_guard(email=email, ip=ip)
    except throttle.LoginLocked as locked:
        return locked_response(request, locked.retry_after)
    response = sign_in()
    if not signed_in(response):
        remaining = throttle.login_lock_remaining(email=email, ip=ip)
        if remaining:
            return locked_response(request, remaining)
    return response


class ThrottledLoginView(LoginView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return _throttled_post(
            request,
            str(request.POST.get("login", ""))[:254],
            lambda: super(ThrottledLoginView, self).post(request, *args, **kwargs),
            signed_in=lambda response: bool(request.user.is_authenticated),
        )


login_view = public_page("the sign-in page")(ThrottledLoginView.as_view())


@public_page("the admin console's sign-in page")
@never_cache
@csrf_protect
def console_login_view(request: HttpRequest) -> HttpResponse:
    """``/admin/login/``: the admin console's own sign-in (password, then the TOTP code), under
    the lock every other sign-in uses. A wrong code counts as a failure too
    (``leanvibe.admin_forms``)."""
    if request.method != "POST":
        return admin.site.login(request)
    return _throttled_post(
        request,
        str(request.POST.get("username", ""))[:254],
        lambda: admin.site.login(request),
        # Django's admin signs in (and redirects) only once password and code are both right.
        signed_in=lambda response: response.status_code == 302 and bool(request.user.is_authenticated),
    )


@staff_page
def console_password_change_view(request: HttpRequest) -> HttpResponse:
    """``/admin/password_change/``: Django's admin page (behind the console's own access
    check), then every API token of the staff member is revoked once the password changed.
    Django's session auth hash keeps this console session and ends the others."""
    before = getattr(request.user, "password", None)
    response: HttpResponse = admin.site.password_change(request)
    user = request.user
    if request.method == "POST" and user.is_authenticated and user.password != before:
        password_changed_record(user=user, via="console", request=request)  # type: ignore[arg-type]
    return response
