"""Forms of the members, invitations and invitation-acceptance pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.password_validation import password_validators_help_text_html, validate_password
from django.core.exceptions import ValidationError

from accounts.emails import CanonicalEmailFormField
from accounts.models import Role, User
from leanvibe.validators import validate_no_control_characters


def _roles_for(actor: User | None) -> list[tuple[str, str]]:
    """The roles ``actor`` may give: only owners may make owners."""
    if actor is not None and actor.role == Role.OWNER:
        return list(Role.choices)
    return [(value, label) for value, label in Role.choices if value != Role.OWNER]


class InvitationForm(forms.Form):
    email = CanonicalEmailFormField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"placeholder": "colleague@example.com", "autocomplete": "off"}),
    )
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args: Any, actor: User | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _roles_for(actor)  # type: ignore[attr-defined]


class MemberActionForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("role", "Change role"), ("deactivate", "Deactivate"), ("reactivate", "Reactivate")]
    )
    role = forms.ChoiceField(choices=Role.choices, required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("action") == "role" and not cleaned.get("role"):
            self.add_error("role", "Choose a role.")
        return cleaned


class InvitationActionForm(forms.Form):
    action = forms.ChoiceField(choices=[("resend", "Resend"), ("revoke", "Revoke")])


class AcceptInvitationForm(forms.Form):
    username = forms.CharField(
        label="Your name",
        max_length=150,
        required=False,
        validators=[validate_no_control_characters],
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = email
        # One plain sentence under the field rather than Django's HTML list.
        self.fields["password1"].help_text = "At least 8 characters; not only digits, not a common password."

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        password1, password2 = cleaned.get("password1"), cleaned.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error("password2", "The two passwords differ.")
        elif password1:
            try:
                validate_password(password1, User(email=self.email, username=cleaned.get("username", "")))
            except ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned
