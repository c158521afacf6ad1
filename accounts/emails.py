"""The one canonical form of an email address.

Every place that compares, stores, looks up or throttles an email uses `email_canonical`:
Unicode NFKC (fullwidth letters and ligatures such as ``ﬁ`` become plain letters), then
``str.casefold()`` (``ß`` becomes ``ss``; dotless ``\u0131`` stays itself, unlike PostgreSQL's ``UPPER`` which
turns it into ``I``), then NFKC again so that the result is stable when canonicalised twice.
Database lookups compare the stored canonical value with ``=``, never ``iexact``/``Lower``,
which fold case differently from Python.
"""

from __future__ import annotations

import unicodedata


def email_canonical(value: str) -> str:
    """Return the canonical form of an email address (surrounding whitespace removed)."""
    folded = unicodedata.normalize("NFKC", value.strip()).casefold()
    return unicodedata.normalize("NFKC", folded).strip()
