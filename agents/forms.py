from __future__ import annotations

from django import forms

from agents.models import Project


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
