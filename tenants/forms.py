from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password

from leanvibe.emails import CanonicalEmailFormField
from leanvibe.validators import validate_no_control_characters
from tenants.plans import Plan


def clean_organization_name(value: str) -> str:
    value = value.strip()
    validate_no_control_characters(value)  # it is in email subjects
    if not any(ch.isalnum() for ch in value):
        raise forms.ValidationError("Enter your organisation's name.")
    return value


class OrganisationNameFormMixin:
    """A real organisation name, without control characters (every form that sets one)."""

    cleaned_data: dict[str, Any]

    def clean_organization_name(self) -> str:
        return clean_organization_name(str(self.cleaned_data["organization_name"]))


class OrganisationOwnerFormMixin(OrganisationNameFormMixin):
    """Checks shared by every form that provisions a tenant: a real name, and an owner password
    that passes Django's validators (judged against the owner's email)."""

    def validate_owner_password(self, cleaned: dict[str, object]) -> None:
        password, email = cleaned.get("admin_password"), cleaned.get("admin_email")
        if password and email:
            try:
                validate_password(str(password), get_user_model()(email=str(email)))
            except forms.ValidationError as exc:
                self.add_error("admin_password", exc)  # type: ignore[attr-defined]


class SignupForm(OrganisationOwnerFormMixin, forms.Form):
    organization_name = forms.CharField(
        label="Organisation name",
        max_length=200,
        widget=forms.TextInput(
            attrs={"autocomplete": "organization", "placeholder": "Initech", "autofocus": True}
        ),
        help_text="Your address will be made from it, e.g. initech.",
    )
    admin_email = CanonicalEmailFormField(
        label="Your work email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "placeholder": "you@example.com"}),
        help_text="You sign in with it and become the organisation's owner.",
    )
    admin_password = forms.CharField(
        label="Password",
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters, not a common password.",
    )
    billing_email = forms.EmailField(
        label="Billing email",
        max_length=254,
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        help_text="Leave empty to use your email.",
    )
    plan = forms.ChoiceField(choices=Plan.choices, initial=Plan.STARTER, widget=forms.RadioSelect)

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        self.validate_owner_password(cleaned)
        if not cleaned.get("billing_email"):
            cleaned["billing_email"] = cleaned.get("admin_email")
        return cleaned
