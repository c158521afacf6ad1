"""The web sign-in form: allauth's own view, behind the same brute-force protection as the API
(``accounts.services.throttle``): slowed after failures, then refused with a 429 page and
``Retry-After`` until the lock expires. Failures are counted by the throttle's
``user_login_failed`` receiver; allauth's ``login_failed`` rate limit stays on as well."""

from __future__ import annotations

from typing import Any

from allauth.account.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.services import throttle
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


class ThrottledLoginView(LoginView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        email = str(request.POST.get("login", ""))[:254]
        ip = client_address(request)
        try:
            throttle.login_attempt_guard(email=email, ip=ip)
        except throttle.LoginLocked as locked:
            return locked_response(request, locked.retry_after)
        response: HttpResponse = super().post(request, *args, **kwargs)
        if not request.user.is_authenticated:
            # This attempt may have been the failure that reached the limit.
            remaining = throttle.login_lock_remaining(email=email, ip=ip)
            if remaining:
                return locked_response(request, remaining)
        return response


login_view = ThrottledLoginView.as_view()
