"""Validators shared by every app.

Names (organisations, members) end up in email headers — subjects, display names — where a CR
or LF makes Django refuse to send (``BadHeaderError``) or, worse, adds a header. So every such
value refuses control characters at input (one validator, used by the forms, serializers and
services alike), and values we do not control (an identity provider's display name) are
stripped of them instead.
"""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError

CONTROL_CHARACTERS_MESSAGE = "Line breaks, tabs and other control characters are not allowed."
# Cc: C0 and C1 controls (CR, LF, TAB, NUL, DEL, NEL...); Zl/Zp: Unicode line and paragraph
# separators, which some mail and log readers treat as line breaks.
_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in _REFUSED_CATEGORIES


def validate_no_control_characters(value: str) -> None:
    """Django validator: refuses CR, LF, TAB and every other control or line-separator
    character (``code="control_characters"``)."""
    if any(_is_control(char) for char in str(value)):
        raise ValidationError(CONTROL_CHARACTERS_MESSAGE, code="control_characters")


def validate_text_fields(**fields: str | None) -> None:
    """``validate_no_control_characters`` on several named values; the ValidationError is keyed
    by field name (the API answers it as 400 ``validation_error`` naming the fields)."""
    errors: dict[str, list[ValidationError]] = {}
    for name, value in fields.items():
        if value is None:
            continue
        try:
            validate_no_control_characters(value)
        except ValidationError as exc:
            errors[name] = [exc]
    if errors:
        raise ValidationError(errors)  # type: ignore[arg-type]


def strip_control_characters(value: str) -> str:
    """``value`` with control characters replaced by spaces, runs of spaces collapsed and the
    ends trimmed: for text from outside we must keep (an IdP's display name), and for email
    subjects built from names stored before the validator existed."""
    value = str(value)
    if not any(_is_control(char) for char in value):
        return value
    cleaned = "".join(" " if _is_control(char) else char for char in value)
    return re.sub(" {2,}", " ", cleaned).strip()
