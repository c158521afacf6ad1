"""Every route of both URL confs has an access rule nobody can forget: an API view derives from a
base class of ``leanvibe.api.base``, a page declares its rule (``leanvibe.access``)."""

from __future__ import annotations

import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path, reverse
from django.urls.resolvers import RegexPattern
from drf_spectacular.views import SpectacularAPIView
from rest_framework.views import APIView

from accounts.models import Role
from accounts.permissions import role_required
from leanvibe.access import Access, access_rule_of, public_page, staff_page
from leanvibe.api.base import DangerouslyPublicAPIView, PlatformAPIView, StaffAPIView, TenantAPIView

URLCONFS = ("leanvibe.urls_public", "leanvibe.urls_tenant")
API_BASES = (TenantAPIView, StaffAPIView, DangerouslyPublicAPIView, PlatformAPIView)

# Third-party views, each guarded by its own library. Our replacements of their pages are
# routed ahead of these includes in the URL confs and are checked like every other page.
THIRD_PARTY_INCLUDES = {
    # Django's admin (our PlatformAdminSite): every view but its login and logout passes
    # AdminSite.admin_view, which needs active staff with a verified second factor.
    "admin",
    # allauth's account, MFA, social-account and user-session pages: sign-in, sign-up and
    # password reset are public by nature, the rest need a signed-in user (allauth's own checks).
    "allauth.urls",
}
THIRD_PARTY_API_VIEWS = {
    # The OpenAPI document of the API: public, read-only, no tenant data.
    SpectacularAPIView,
}


@dataclass(frozen=True)
class Route:
    path: str
    name: str | None
    view: Callable[..., Any]
    includes: tuple[str, ...]


def _include_label(resolver: URLResolver) -> str:
    if resolver.namespace:
        return resolver.namespace
    urlconf = resolver.urlconf_name
    return urlconf if isinstance(urlconf, str) else getattr(urlconf, "__name__", "")


def walk(patterns: list[Any], prefix: str = "", includes: tuple[str, ...] = ()) -> Iterator[Route]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            label = _include_label(pattern)
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), (*includes, label))
        elif isinstance(pattern, URLPattern):
            yield Route(prefix + str(pattern.pattern), pattern.name, pattern.callback, includes)


def routes_without_rule(urlconf: str | types.ModuleType) -> list[str]:
    """Each route that is neither an API view on a base class nor a page with a declared rule."""
    problems = []
    for route in walk(URLResolver(RegexPattern(r"^/"), urlconf).url_patterns):
        if THIRD_PARTY_INCLUDES.intersection(route.includes):
            continue
        view_class = getattr(route.view, "view_class", None)
        where = f"{route.path or '/'} ({route.name})"
        if isinstance(view_class, type) and issubclass(view_class, APIView):
            if view_class not in THIRD_PARTY_API_VIEWS and not issubclass(view_class, API_BASES):
                problems.append(f"{where}: {view_class.__qualname__} derives from no leanvibe.api.base class")
        elif access_rule_of(route.view) is None:
            view = f"{route.view.__module__}.{route.view.__qualname__}"
            problems.append(f"{where}: {view} declares no access rule")
    return problems


@pytest.mark.parametrize("urlconf", URLCONFS)
def test_every_route_declares_its_access_rule(urlconf):
    assert routes_without_rule(urlconf) == []


def _page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("page")


def _other_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("page")


class _PlainApi(APIView):
    def get(self, request: Any) -> Any:
        return None


class _MemberApi(TenantAPIView):
    def get(self, request: Any) -> Any:
        return None


def test_the_walk_names_a_page_without_a_rule_and_an_api_view_without_a_base():
    urlconf = types.ModuleType("undeclared_urls")
    urlconf.urlpatterns = [  # type: ignore[attr-defined]
        path("undeclared/", _page, name="undeclared"),
        path("public/", public_page("a test page")(_other_page), name="public"),
        path("members-only/", role_required(Role.MEMBER)(_page), name="members-only"),
        path("plain-api", _PlainApi.as_view(), name="plain-api"),
        path("member-api", _MemberApi.as_view(), name="member-api"),
    ]
    assert routes_without_rule(urlconf) == [
        f"undeclared/ (undeclared): {__name__}._page declares no access rule",
        "plain-api (plain-api): _PlainApi derives from no leanvibe.api.base class",
    ]


def test_the_decorators_that_enforce_a_rule_declare_it():
    assert access_rule_of(_page) is None
    assert access_rule_of(public_page("anyone")(lambda request: HttpResponse())) == Access.PUBLIC
    assert access_rule_of(staff_page(_page)) == Access.STAFF
    for role in Role:
        assert access_rule_of(role_required(role)(_page)) == Access(role.value)
    with pytest.raises(ValueError, match="reason"):
        public_page(" ")


def _dummy_kwargs(pattern: Any) -> dict[str, Any]:
    values = {"IntConverter": 1, "UUIDConverter": uuid.uuid4()}
    converters = getattr(pattern.pattern, "converters", {})
    return {name: values.get(type(converter).__name__, "x") for name, converter in converters.items()}


@pytest.mark.django_db
@pytest.mark.parametrize("urlconf", URLCONFS)
def test_an_anonymous_visitor_is_sent_to_sign_in_by_every_guarded_page(client, tenant_a, urlconf):
    """A declared rule is the rule enforced: no page declared member, admin, owner or staff
    answers a visitor who has not signed in."""
    host = tenant_a.host if urlconf.endswith("tenant") else "testserver"
    checked = 0
    for pattern in URLResolver(RegexPattern(r"^/"), urlconf).url_patterns:
        if not isinstance(pattern, URLPattern) or access_rule_of(pattern.callback) in (None, Access.PUBLIC):
            continue
        url = reverse(pattern.name, urlconf=urlconf, kwargs=_dummy_kwargs(pattern))
        for method in ("get", "post"):
            response = getattr(client, method)(url, HTTP_HOST=host)
            assert response.status_code == 302, (method, url, response.status_code)
            assert "login" in response["Location"], (method, url, response["Location"])
        checked += 1
    assert checked
