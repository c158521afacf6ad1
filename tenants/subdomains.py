"""Subdomain (and so schema name) derived from an organisation's name."""

from __future__ import annotations

import re
import unicodedata

from django.conf import settings

MAX_LENGTH = 30
# Names that would collide with platform hosts, or with PostgreSQL's own schemas.
RESERVED = frozenset(
    {
        "www",
        "admin",
        "api",
        "app",
        "public",
        "static",
        "media",
        "mail",
        "information_schema",
        "pg_catalog",
        "pg_toast",
        "pg_temp",
        "template0",
        "template1",
        "postgres",
    }
)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
VALID_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?$")


def is_reserved(name: str) -> bool:
    return (
        name in RESERVED
        or name.startswith("pg_")
        or name == settings.TENANT_TEMPLATE_SCHEMA
        or name.startswith("pool_")
    )


def slugify_organization(name: str) -> str:
    """``"Acme Corp., Inc."`` -> ``"acme-corp-inc"``: lower case, runs of other characters become
    one ``-``, trimmed, at most 30 characters."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _NON_ALNUM.sub("-", ascii_name.lower()).strip("-")
    slug = slug[:MAX_LENGTH].strip("-")
    return slug or "organization"


def candidates(base: str):
    """``base``, then ``base-1``, ``base-2``, ... each kept within 30 characters."""
    if not is_reserved(base):
        yield base
    n = 1
    while True:
        suffix = f"-{n}"
        yield base[: MAX_LENGTH - len(suffix)].rstrip("-") + suffix
        n += 1
