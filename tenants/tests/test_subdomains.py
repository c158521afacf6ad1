from __future__ import annotations

import itertools

import pytest

from tenants.subdomains import candidates, is_reserved, slugify_organization


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Acme Corporation", "acme-corporation"),
        ("  Acme,   Corp. & Sons!! ", "acme-corp-sons"),
        ("ÜBER Café", "uber-cafe"),
        ("A" * 40, "a" * 30),
        ("abc " + "x" * 25 + " tail", "abc-" + "x" * 25),  # cut at 30, trailing '-' trimmed
        ("!!!", "organization"),
        ("123 Go", "123-go"),
    ],
)
def test_slugify_organization(name, expected):
    slug = slugify_organization(name)
    assert slug == expected
    assert len(slug) <= 30


def test_candidates_add_numbers_within_30_characters():
    base = "b" * 30
    first = list(itertools.islice(candidates(base), 3))
    assert first == [base, "b" * 28 + "-1", "b" * 28 + "-2"]
    assert all(len(c) <= 30 for c in first)


@pytest.mark.parametrize(
    "name",
    [
        "www",
        "admin",
        "api",
        "app",
        "public",
        "static",
        "media",
        "mail",
        "pg_catalog",
        "information_schema",
        "pg_toast",
        "tenant_template",
        "pool_abc",
    ],
)
def test_reserved_names_are_never_candidates(name):
    assert is_reserved(name)
    assert next(candidates(name)) == f"{name}-1"
