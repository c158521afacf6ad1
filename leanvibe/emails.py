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
from typing import Any

from django import forms
from django.db import models
from rest_framework import serializers


def email_canonical(value: str) -> str:
    """Return the canonical form of an email address (surrounding whitespace removed)."""
    folded = unicodedata.normalize("NFKC", value.strip()).casefold()
    return unicodedata.normalize("NFKC", folded).strip()


def _canonical_or_same(value: Any) -> Any:
    return email_canonical(value) if isinstance(value, str) else value


class CanonicalEmailField(models.EmailField):
    """A model's email, always saved canonical and looked up canonical: ``filter(email=...)``
    and ``get_by_natural_key`` canonicalise their argument, so an exact lookup is the one
    comparison there is (no ``iexact``). ``unique=True`` then makes the canonical value unique."""

    def to_python(self, value: Any) -> Any:
        return _canonical_or_same(super().to_python(value))

    def get_prep_value(self, value: Any) -> Any:
        return _canonical_or_same(super().get_prep_value(value))

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = _canonical_or_same(getattr(model_instance, self.attname))
        setattr(model_instance, self.attname, value)
        return value

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(**{"form_class": CanonicalEmailFormField, **kwargs})


class CanonicalEmailFormField(forms.EmailField):
    """A form's email field that validates and returns the canonical form (so ``\\uff2b`` or the
    ``\\ufb01`` ligature are read as the plain letters they stand for)."""

    def to_python(self, value: Any) -> Any:
        return _canonical_or_same(super().to_python(value))


class CanonicalEmailSerializerField(serializers.EmailField):
    """The API's email input: canonicalised first, then validated."""

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str):
            data = email_canonical(data)
        return str(super().to_internal_value(data))
