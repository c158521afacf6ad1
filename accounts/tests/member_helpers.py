"""Helpers shared by the members, invitations and member-page tests."""

from __future__ import annotations

import re
from typing import Any

from django.core import mail
from django_tenants.utils import schema_context

from conftest import ApiClient, TenantHandle

PASSWORD = "a-long-enough-passphrase-42"
ACCEPT_LINK = re.compile(r"(https?://[^/\s]+)/invitations/accept/([A-Za-z0-9_\-]+)/")


class Org:
    """A tenant seen through its API: its owner's token, and helpers to add people."""

    def __init__(self, api: ApiClient, handle: TenantHandle) -> None:
        self.api = api
        self.handle = handle
        self.host = handle.host
        self.owner_token = handle.login(api)
        self.owner_id = self.user_id(handle.owner_email)

    def call(self, method: str, path: str, data: Any = None, *, token: str | None = None, **kw: Any) -> Any:
        return self.api.call(method, path, data, host=self.host, token=token or self.owner_token, **kw)

    def add(self, email: str, role: str = "member", *, token: str | None = None) -> dict[str, Any]:
        response = self.call(
            "POST", "/api/v1/users", {"email": email, "password": PASSWORD, "role": role}, token=token
        )
        assert response.status_code == 201, response.body
        return dict(response.body)

    def login(self, email: str, password: str = PASSWORD) -> str:
        return self.handle.login(self.api, email, password)

    def add_and_login(self, email: str, role: str = "member") -> tuple[dict[str, Any], str]:
        user = self.add(email, role)
        return user, self.login(email)

    def user_id(self, email: str) -> int:
        from accounts.models import User

        with schema_context(self.handle.tenant.schema_name):
            return int(User.objects.get(email=email).pk)

    def user(self, email: str) -> Any:
        from accounts.models import User

        with schema_context(self.handle.tenant.schema_name):
            return User.objects.get(email=email)

    def users_count(self) -> int:
        from accounts.models import User

        with schema_context(self.handle.tenant.schema_name):
            return User.objects.count()

    def audit(self, type: str) -> list[Any]:
        from accounts.models import AuditEvent

        with schema_context(self.handle.tenant.schema_name):
            return list(AuditEvent.objects.filter(type=type).select_related("actor", "target_user"))


def last_accept_link() -> tuple[str, str]:
    """(site origin, secret) of the last invitation email sent."""
    assert mail.outbox, "no email was sent"
    found = ACCEPT_LINK.search(str(mail.outbox[-1].body))
    assert found, mail.outbox[-1].body
    return found.group(1), found.group(2)
