"""Where things live (issue 7, "rooms with one purpose"): the SSO package replaced the old
modules without shims, and the process supervisor is a command of the project package."""

from __future__ import annotations

import importlib.util

import pytest
from django.core.management import get_commands


@pytest.mark.parametrize(
    "old_module", ["accounts.services.sso", "accounts.services.sso_signin", "accounts.saml_urls"]
)
def test_the_old_sso_modules_are_gone_without_a_shim(old_module):
    assert importlib.util.find_spec(old_module) is None


@pytest.mark.parametrize("module", ["common", "urls", "providers", "settings", "oidc", "saml", "signin"])
def test_each_sso_concern_has_its_module(module):
    assert importlib.util.find_spec(f"accounts.sso.{module}") is not None


def test_run_platform_is_a_command_of_the_project_package_not_of_tenants():
    assert get_commands()["run_platform"] == "leanvibe.platform"
