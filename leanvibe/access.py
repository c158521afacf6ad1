"""Who may open a page: every routed page view declares it, and a test walks both URL confs
(``leanvibe/tests/test_access_rules.py``) to refuse one that does not.

The rule is declared by the decorator that enforces it, so the two cannot differ:

- ``public_page(reason)``: anyone, for the reason given (sign-in, sign-up, a link's secret);
- ``staff_page``: the admin console's own guard (``admin.site.admin_view``: active staff with a
  verified second factor);
- ``accounts.permissions.role_required(role)``: a signed-in member of the tenant with that role
  (member, admin, owner) or a higher one.

API views need none of this: they derive from the base classes of ``leanvibe.api.base``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from django.contrib import admin

View = TypeVar("View", bound=Callable[..., Any])

ACCESS_RULE_ATTRIBUTE = "access_rule"
ACCESS_REASON_ATTRIBUTE = "access_reason"


class Access(StrEnum):
    PUBLIC = "public"
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"
    STAFF = "staff"


def declare_access(view: View, rule: Access, *, reason: str = "") -> View:
    """Record ``rule`` on ``view`` (a function, or a class-based view's ``as_view()``). Only the
    decorators that enforce a rule call this: a declaration alone guards nothing."""
    setattr(view, ACCESS_RULE_ATTRIBUTE, Access(rule))
    setattr(view, ACCESS_REASON_ATTRIBUTE, reason)
    return view


def access_rule_of(view: Callable[..., Any]) -> Access | None:
    """The rule a routed view declares, on the function or on its class; ``None`` if none."""
    for holder in (view, getattr(view, "view_class", None)):
        rule = getattr(holder, ACCESS_RULE_ATTRIBUTE, None)
        if rule is not None:
            return Access(rule)
    return None


def public_page(reason: str) -> Callable[[View], View]:
    """Mark a page anyone may open; ``reason`` says why it is public by nature."""
    if not reason.strip():
        raise ValueError("public_page needs the reason the page is public")

    def decorator(view: View) -> View:
        return declare_access(view, Access.PUBLIC, reason=reason)

    return decorator


def staff_page(view: View) -> View:
    """Guard a page of the admin console as the console guards its own (signed-in active staff
    with a verified second factor, else its sign-in page) and declare it staff-only."""
    guarded: View = admin.site.admin_view(view)  # type: ignore[assignment]
    return declare_access(guarded, Access.STAFF)
