from __future__ import annotations

from django import forms
from django.contrib.auth.password_validation import validate_password

from tenants.plans import Plan


class SignupForm(forms.Form):
    organization_name = forms.CharField(
        label="Organisation name",
        max_length=200,
        widget=forms.TextInput(
            attrs={"autocomplete": "organization", "placeholder": "Initech", "autofocus": True}
        ),
        help_text="Your address will be made from it, e.g. initech.",
    )
    admin_email = forms.EmailField(
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

    def clean_organization_name(self) -> str:
        value: str = self.cleaned_data["organization_name"].strip()
        if not any(ch.isalnum() for ch in value):
            raise forms.ValidationError("Enter your organisation's name.")
        return value

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        password, email = cleaned.get("admin_password"), cleaned.get("admin_email")
        if password and email:
            from accounts.models import User

            try:
                validate_password(str(password), User(email=str(email)))
            except forms.ValidationError as exc:
                self.add_error("admin_password", exc)
        if not cleaned.get("billing_email"):
            cleaned["billing_email"] = email
        return cleaned
