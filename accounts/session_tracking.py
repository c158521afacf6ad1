"""allauth's user-session tracking, on tenant sites only.

``allauth.usersessions`` is a tenant app: its table exists in every tenant schema, not in
``public``. allauth's middleware would try to record the admin console's staff sessions in a
table the public schema does not have, so it runs only when the request has a tenant.
"""

from __future__ import annotations

from allauth.usersessions.middleware import UserSessionsMiddleware
from django.http import HttpRequest, HttpResponse


class TenantUserSessionsMiddleware(UserSessionsMiddleware):
    def __call__(self, request: HttpRequest) -> HttpResponse:
        if getattr(request, "tenant", None) is None:
            return self.get_response(request)  # type: ignore[no-any-return]
        return super().__call__(request)  # type: ignore[no-any-return]
