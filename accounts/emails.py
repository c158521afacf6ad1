"""The one canonical form of an email address: Unicode NFKC, then case-folded."""

from __future__ import annotations

import unicodedata


def email_canonical(value: str) -> str:
    return unicodedata.normalize("NFKC", value.strip()).casefold()
