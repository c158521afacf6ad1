"""The tenant dashboard: projects and usage, through Django's test client on the tenant's host."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from agents.models import Project
from conftest import TenantHandle
from leanvibe.tests.html import field_errors, form_errors, messages, page, text_of, texts

HTML: dict[str, Any] = {"HTTP_ACCEPT": "text/html"}


def sign_in(client: Client, handle: TenantHandle) -> None:
    """A browser session in the tenant's schema, where its users and sessions live."""
    from accounts.models import User

    with schema_context(handle.tenant.schema_name):
        client.force_login(User.objects.get(email=handle.owner_email))


def project_of(handle: TenantHandle, name: str) -> Project:
    with schema_context(handle.tenant.schema_name):
        return Project.objects.exclude(status=Project.Status.DELETED).get(name=name)


class Site:
    """One tenant's site as its signed-in owner sees it."""

    def __init__(self, client: Client, handle: TenantHandle) -> None:
        self.client = client
        self.handle = handle

    def get(self, path: str = "/") -> Any:
        return self.client.get(path, HTTP_HOST=self.handle.host, **HTML)

    def post(self, path: str, data: dict[str, str], **kw: Any) -> Any:
        return self.client.post(path, data, HTTP_HOST=self.handle.host, **HTML, **kw)

    def create(self, name: str, description: str = "") -> Any:
        return self.post("/projects/", {"name": name, "description": description})

    def act(self, project_name: str, action: str, /, **data: str) -> Any:
        project = project_of(self.handle, project_name)
        return self.post(f"/projects/{project.id}/", {"action": action, **data}, follow=True)

    def active_names(self) -> list[str]:
        return texts(page(self.get()), '//ul[@id="active-projects"]//*[@class="project-name"]')

    def archived_names(self) -> list[str]:
        return texts(page(self.get()), '//ul[@id="archived-projects"]//*[@class="project-name"]')


@pytest.fixture
def site_a(client: Client, tenant_a: TenantHandle) -> Site:
    sign_in(client, tenant_a)
    return Site(client, tenant_a)


# --- access ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dashboard_requires_signing_in(client: Client, tenant_a: TenantHandle) -> None:
    response = client.get("/", HTTP_HOST=tenant_a.host, **HTML)

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


@pytest.mark.django_db
def test_project_forms_require_signing_in(client: Client, tenant_a: TenantHandle) -> None:
    welcome = project_of(tenant_a, "Welcome")

    created = client.post("/projects/", {"name": "Sneaky"}, HTTP_HOST=tenant_a.host, **HTML)
    deleted = client.post(f"/projects/{welcome.id}/", {"action": "delete"}, HTTP_HOST=tenant_a.host, **HTML)

    assert created.status_code == deleted.status_code == 302
    assert created["Location"].startswith("/accounts/login/")
    with schema_context(tenant_a.tenant.schema_name):
        assert list(Project.objects.values_list("name", "status")) == [("Welcome", "active")]


@pytest.mark.django_db
def test_a_session_of_one_organisation_is_not_signed_in_at_another(
    client: Client, tenant_a: TenantHandle, tenant_b: TenantHandle
) -> None:
    sign_in(client, tenant_a)
    assert client.get("/", HTTP_HOST=tenant_a.host, **HTML).status_code == 200

    # The same browser session (cookie) sent to B's host: B's schema knows no such session.
    response = client.get("/", HTTP_HOST=tenant_b.host, **HTML)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert b"Globex" not in response.content


@pytest.mark.django_db
def test_a_project_of_another_organisation_cannot_be_changed_through_ones_own_host(
    site_a: Site, tenant_b: TenantHandle
) -> None:
    theirs = project_of(tenant_b, "Welcome")

    for data in ({"action": "delete"}, {"action": "rename", "name": "Pwned"}, {"action": "archive"}):
        response = site_a.post(f"/projects/{theirs.id}/", data)
        assert response.status_code == 404
        assert "Page not found" in texts(page(response), "//h1")

    with schema_context(tenant_b.tenant.schema_name):
        unchanged = Project.objects.get(id=theirs.id)
    assert (unchanged.name, unchanged.status) == ("Welcome", "active")
    # ... and A's own project of the same name was not touched either.
    assert site_a.active_names() == ["Welcome"]


@pytest.mark.django_db
def test_dashboards_show_only_their_own_organisations_projects(
    client: Client, tenant_a: TenantHandle, tenant_b: TenantHandle
) -> None:
    site_a = Site(client, tenant_a)
    sign_in(client, tenant_a)
    site_a.create("Apollo")

    other = Client()
    sign_in(other, tenant_b)
    site_b = Site(other, tenant_b)

    assert site_a.active_names() == ["Apollo", "Welcome"]
    assert site_b.active_names() == ["Welcome"]
    assert b"Apollo" not in site_b.get().content


# --- projects --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dashboard_shows_the_welcome_project_and_the_organisation(site_a: Site) -> None:
    response = site_a.get()

    assert response.status_code == 200
    doc = page(response)
    assert texts(doc, "//h1") == ["Acme Corporation"]
    assert site_a.active_names() == ["Welcome"]
    assert "Your first project" in " ".join(texts(doc, '//*[@class="project-desc"]'))
    assert "Starter plan" in " ".join(texts(doc, '//*[contains(@class, "badge-plan")]'))
    assert site_a.handle.owner_email in texts(doc, '//*[@class="nav-user"]')


@pytest.mark.django_db
def test_creating_a_project_shows_it_first_in_the_list(site_a: Site) -> None:
    response = site_a.create("Apollo", "Moon landing")

    assert response.status_code == 302
    assert response["Location"] == "/"
    doc = page(site_a.get())
    assert texts(doc, '//ul[@id="active-projects"]//*[@class="project-name"]') == ["Apollo", "Welcome"]
    assert "Moon landing" in texts(doc, '//*[@class="project-desc"]')
    assert messages(doc) == ["Project “Apollo” created."]


@pytest.mark.django_db
def test_duplicate_project_name_is_shown_next_to_the_name(site_a: Site) -> None:
    site_a.create("Apollo")

    response = site_a.create("apollo")

    assert response.status_code == 400
    doc = page(response)
    assert field_errors(doc, "name") == ["Project 'apollo' already exists in your organization"]
    assert doc.xpath('//input[@name="name"]')[0].get("value") == "apollo"
    assert site_a.active_names() == ["Apollo", "Welcome"]


@pytest.mark.django_db
def test_blank_project_name_is_refused_inline(site_a: Site) -> None:
    response = site_a.create("   ")

    assert response.status_code == 400
    assert field_errors(page(response), "name") == ["This field is required."]


@pytest.mark.django_db
def test_project_quota_is_shown_on_the_form(site_a: Site) -> None:
    for n in range(1, 5):  # Welcome + 4 = the starter plan's 5
        assert site_a.create(f"Project {n}").status_code == 302

    response = site_a.create("One too many")

    assert response.status_code == 400
    doc = page(response)
    assert form_errors(doc) == ["Project limit reached (5). Upgrade to create more projects."]
    assert "One too many" not in texts(doc, '//*[@class="project-name"]')
    meter = doc.xpath('//div[@data-resource="projects"]')[0]
    assert "5 / 5" in text_of(meter)
    assert "meter-danger" in meter.get("class")


@pytest.mark.django_db
def test_rename_archive_restore_and_delete(site_a: Site) -> None:
    site_a.create("Apollo")
    assert site_a.active_names() == ["Apollo", "Welcome"]

    renamed = site_a.act("Apollo", "rename", name="Artemis")
    assert messages(page(renamed)) == ["Renamed “Apollo” to “Artemis”."]
    assert site_a.active_names() == ["Artemis", "Welcome"]

    archived = site_a.act("Artemis", "archive")
    assert messages(page(archived)) == ["Project “Artemis” archived."]
    assert site_a.active_names() == ["Welcome"]
    assert site_a.archived_names() == ["Artemis"]
    archived_item = page(site_a.get()).xpath('//ul[@id="archived-projects"]/li')[0]
    assert archived_item.get("data-status") == "archived"
    assert archived_item.xpath('.//input[@name="action"][@value="restore"]')

    restored = site_a.act("Artemis", "restore")
    assert messages(page(restored)) == ["Project “Artemis” restored."]
    assert site_a.active_names() == ["Artemis", "Welcome"]
    assert site_a.archived_names() == []

    deleted = site_a.act("Artemis", "delete")
    assert messages(page(deleted)) == ["Project “Artemis” deleted."]
    assert site_a.active_names() == ["Welcome"]
    # A deleted project frees its name.
    assert site_a.create("Artemis").status_code == 302


@pytest.mark.django_db
def test_renaming_to_a_taken_name_says_so(site_a: Site) -> None:
    site_a.create("Apollo")
    assert site_a.active_names() == ["Apollo", "Welcome"]

    response = site_a.act("Apollo", "rename", name="welcome")

    assert messages(page(response)) == ["Project 'welcome' already exists in your organization"]
    assert site_a.active_names() == ["Apollo", "Welcome"]


@pytest.mark.django_db
def test_renaming_to_nothing_says_so(site_a: Site) -> None:
    response = site_a.act("Welcome", "rename", name="  ")

    assert messages(page(response)) == ["Enter the new name."]
    assert site_a.active_names() == ["Welcome"]


@pytest.mark.django_db
def test_unknown_action_and_unknown_project(site_a: Site) -> None:
    response = site_a.act("Welcome", "explode")
    assert any("Select a valid choice" in m for m in messages(page(response)))

    missing = site_a.post("/projects/00000000-0000-0000-0000-000000000000/", {"action": "delete"})
    assert missing.status_code == 404
    assert site_a.active_names() == ["Welcome"]


@pytest.mark.django_db
def test_empty_state_when_there_are_no_projects(site_a: Site) -> None:
    site_a.act("Welcome", "delete")

    doc = page(site_a.get())

    assert doc.xpath('//*[@id="projects-empty"]')
    assert "No active projects" in texts(doc, '//*[@id="projects-empty"]/h3')
    assert not doc.xpath('//ul[@id="active-projects"]')


# --- usage -----------------------------------------------------------------------------------


def _meters(doc: Any) -> dict[str, tuple[str, str, str]]:
    """resource -> (label with values, class, bar width)."""
    result = {}
    for meter in doc.xpath("//div[@data-resource]"):
        fill = meter.xpath('.//*[@class="meter-fill"]')[0]
        result[meter.get("data-resource")] = (text_of(meter), meter.get("class"), fill.get("width"))
    return result


@pytest.mark.django_db
def test_usage_bars_show_use_against_the_plan(site_a: Site) -> None:
    site_a.create("Apollo")

    meters = _meters(page(site_a.get()))

    assert set(meters) == {"projects", "users", "api_calls", "storage_bytes"}
    assert meters["projects"][0] == "Projects 2 / 5"
    assert meters["projects"][2] == "40%"
    assert meters["users"][0] == "Users 1 / 3"
    assert meters["users"][2] == "33%"
    assert meters["api_calls"][0] == "API calls this month 0 / 10,000"
    storage_text = meters["storage_bytes"][0]
    assert storage_text.startswith("Storage ")
    assert storage_text.endswith(" / 1 GB")
    assert any(unit in storage_text for unit in (" KB ", " MB ")), storage_text


@pytest.mark.django_db
def test_unlimited_plan_shows_unlimited(client: Client, make_tenant: Callable[..., TenantHandle]) -> None:
    handle = make_tenant("Massive Dynamic", plan="enterprise")
    sign_in(client, handle)

    doc = page(Site(client, handle).get())

    meters = _meters(doc)
    # Enterprise is never blocked; its metered metrics show the amount included in the price.
    assert meters.pop("api_calls")[0] == "API calls this month 0 / 1,000,000"
    for text, css_class, width in meters.values():
        assert text.endswith("/ Unlimited"), text
        assert "meter-unlimited" in css_class
        assert width == "0%"
    assert "Enterprise plan" in " ".join(texts(doc, '//*[contains(@class, "badge-plan")]'))
