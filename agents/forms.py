from __future__ import annotations

from typing import Any

from django import forms

from agents.models import DevelopmentTask, Project
from agents.services import REQUIREMENT_CHARS, REQUIREMENTS_MAX


class ProjectForm(forms.Form):
    name = forms.CharField(
        label="Project name",
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Checkout redesign", "autocomplete": "off"}),
    )
    description = forms.CharField(
        label="Description",
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What is this project about?"}),
    )


class ProjectActionForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("rename", "Rename"), ("archive", "Archive"), ("restore", "Restore"), ("delete", "Delete")]
    )
    name = forms.CharField(max_length=100, required=False)

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        if cleaned.get("action") == "rename" and not str(cleaned.get("name") or "").strip():
            self.add_error("name", "Enter the new name.")
        return cleaned


STATUS_FOR_ACTION = {"archive": Project.Status.ARCHIVED, "restore": Project.Status.ACTIVE}


class TaskForm(forms.Form):
    title = forms.CharField(
        label="Title",
        max_length=200,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Add two numbers", "autocomplete": "off"}),
    )
    description = forms.CharField(
        label="What should the agent build?",
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    requirements = forms.CharField(
        label="Requirements",
        required=False,
        help_text="One per line: short sentences the code must satisfy.",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "add(2, 3) == 5"}),
    )
    priority = forms.ChoiceField(
        choices=DevelopmentTask.Priority.choices, initial=DevelopmentTask.Priority.MEDIUM
    )
    project = forms.ChoiceField(label="Project", required=False, choices=[])

    def __init__(self, *args: Any, projects: list[Project] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "No project")] + [(str(p.id), p.name) for p in projects or []]
        self.fields["project"].choices = choices  # type: ignore[attr-defined]

    def clean_requirements(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["requirements"].splitlines()]
        requirements = [line for line in lines if line]
        if len(requirements) > REQUIREMENTS_MAX:
            raise forms.ValidationError(f"At most {REQUIREMENTS_MAX} requirements.")
        if any(len(line) > REQUIREMENT_CHARS for line in requirements):
            raise forms.ValidationError(f"Each requirement has at most {REQUIREMENT_CHARS} characters.")
        return requirements
