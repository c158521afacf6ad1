"""Admin console for organisations (public host, platform staff only).

Every write goes through ``tenants.services``: adding an organisation provisions it (schema,
owner, Welcome project, emails) and suspension is an action. The schema name is fixed once
created, and organisations are not deleted from here: suspending is the reversible way out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from leanvibe.emails import CanonicalEmailFormField
from leanvibe.errors import DomainError
from leanvibe.http import client_address
from tenants import selectors, services
from tenants.forms import OrganisationNameFormMixin, OrganisationOwnerFormMixin
from tenants.journey.selectors import journey_summary
from tenants.models import Domain, PooledSchema, Tenant
from tenants.registry import ChangeActor
from tenants.schemas import schema_fingerprint
from tenants.tenant_settings import SPECS, timezone_choices

SETTING_FIELDS = ("require_mfa", "sso_only", "trust_idp_mfa", "timezone")


class DomainFormSet(BaseInlineFormSet):
    """The rules ``domain_save``/``domain_remove`` enforce, checked first so they show inline."""

    def clean(self) -> None:
        super().clean()
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        if sum(1 for f in kept if f.cleaned_data.get("is_primary")) != 1:
            raise forms.ValidationError(
                "Mark exactly one domain as primary: the organisation's links use it."
            )


class DomainInline(admin.TabularInline):
    model = Domain
    formset = DomainFormSet
    fields = ("domain", "is_primary")
    extra = 0


class TenantProvisionForm(OrganisationOwnerFormMixin, forms.ModelForm):
    """The add form: what ``tenant_provision`` needs, validated before anything is created."""

    admin_email = CanonicalEmailFormField(label="Owner email", max_length=254)
    admin_password = forms.CharField(
        label="Owner password",
        required=False,
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to generate one; it is shown once, after saving.",
    )

    class Meta:
        model = Tenant
        fields = ("organization_name", "billing_email", "plan", "admin_email", "admin_password")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self.validate_owner_password(cleaned)
        return cleaned


class TenantChangeForm(OrganisationNameFormMixin, forms.ModelForm):
    """The change form: the organisation name is checked as on sign-up, and the settings are
    typed fields (``tenants.tenant_settings``), never raw JSON. ``TenantAdmin`` saves it through
    the services, so a change here is validated, audited and emailed as one made in the app."""

    require_mfa = forms.BooleanField(label=SPECS["require_mfa"].label, required=False)
    sso_only = forms.BooleanField(
        label=SPECS["sso_only"].label,
        required=False,
        help_text="Needs an identity provider configured by the organisation.",
    )
    trust_idp_mfa = forms.BooleanField(label=SPECS["trust_idp_mfa"].label, required=False)
    timezone = forms.ChoiceField(label=SPECS["timezone"].label, choices=timezone_choices)

    class Meta:
        model = Tenant
        fields = ("organization_name", "plan", "billing_email")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            current = self.instance.typed_settings
            for name in SETTING_FIELDS:
                self.fields[name].initial = getattr(current, name)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.pk is not None and all(name in cleaned for name in SETTING_FIELDS):
            try:
                services.tenant_settings_check(tenant=self.instance, changes=self.setting_changes())
            except DomainError as exc:
                self.add_error(None, exc.detail)
        return cleaned

    def setting_changes(self) -> dict[str, Any]:
        current = self.instance.typed_settings
        return {
            name: self.cleaned_data[name]
            for name in SETTING_FIELDS
            if self.cleaned_data[name] != getattr(current, name)
        }


class TenantChangeList(ChangeList):
    """Attaches each row's user count, read for the whole page in one query."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows: list[Tenant] = list(self.result_list)  # evaluates and caches the page's queryset
        counts = selectors.tenant_user_counts(rows)
        for tenant in rows:
            tenant.admin_user_count = counts.get(tenant.id, 0)  # type: ignore[attr-defined]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("organization_name", "subdomain", "plan", "status", "user_count", "created_at")
    list_display_links = ("organization_name",)
    list_filter = ("plan", "status")
    search_fields = ("organization_name", "schema_name", "billing_email")
    ordering = ("organization_name",)
    actions = ("suspend_selected", "resume_selected")
    inlines = (DomainInline,)
    add_form = TenantProvisionForm
    form = TenantChangeForm
    fieldsets = (
        (None, {"fields": ("organization_name", "schema_name", "plan", "billing_email")}),
        ("State", {"fields": ("status", "user_count")}),
        ("Journey", {"fields": ("journey",)}),
        ("Settings", {"fields": SETTING_FIELDS}),
        ("Record", {"fields": ("id", "created_at", "updated_at")}),
    )
    add_fieldsets = (
        (None, {"fields": ("organization_name", "billing_email", "plan")}),
        ("Owner", {"fields": ("admin_email", "admin_password")}),
    )
    # Status changes go through the suspend / resume actions, which call the services.
    change_readonly_fields = (
        "id",
        "schema_name",
        "status",
        "user_count",
        "journey",
        "created_at",
        "updated_at",
    )

    # --- list -------------------------------------------------------------------------------
    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TenantChangeList

    @admin.display(description="Subdomain", ordering="schema_name")
    def subdomain(self, tenant: Tenant) -> str:
        return tenant.schema_name

    @admin.display(description="Users")
    def user_count(self, tenant: Tenant) -> int:
        count = getattr(tenant, "admin_user_count", None)
        return selectors.tenant_user_count(tenant) if count is None else int(count)

    @admin.display(description="Levels")
    def journey(self, tenant: Tenant) -> str:
        """Each level of the tenant's journey: its badge, steps done, when it was unlocked."""
        view = journey_summary(tenant)
        return format_html(
            '<ol class="journey-admin" id="tenant-journey">{}</ol>',
            format_html_join(
                "",
                '<li data-level="{}" data-unlocked="{}">{} {}. {}: {} of {} steps{}</li>',
                (
                    (
                        level["number"],
                        "yes" if level["unlocked"] else "no",
                        level["badge"],
                        level["number"],
                        level["name"],
                        level["done"],
                        level["total"],
                        f", unlocked {level['unlocked_at']:%Y-%m-%d}" if level["unlocked"] else "",
                    )
                    for level in view["levels"]
                ),
            ),
        )

    # --- actions ----------------------------------------------------------------------------
    @admin.action(description="Suspend selected organisations", permissions=["change"])
    def suspend_selected(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        self._change_status(
            request, queryset.filter(status=Tenant.Status.ACTIVE), services.tenant_suspend, "Suspended"
        )

    @admin.action(description="Resume selected organisations", permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        self._change_status(
            request, queryset.filter(status=Tenant.Status.SUSPENDED), services.tenant_resume, "Resumed"
        )

    def _change_status(
        self, request: HttpRequest, tenants: QuerySet[Tenant], action: Callable[..., Tenant], verb: str
    ) -> None:
        changed = 0
        for tenant in tenants:
            action(tenant=tenant)
            self.log_change(request, tenant, f"{verb}.")
            changed += 1
        self.message_user(request, f"{verb} {changed} organisation(s).", messages.SUCCESS)

    # --- add through provisioning, change without touching the schema ----------------------
    def get_fieldsets(self, request: HttpRequest, obj: Tenant | None = None) -> Any:
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Tenant | None = None) -> Any:
        return () if obj is None else self.change_readonly_fields

    def get_inlines(self, request: HttpRequest, obj: Tenant | None) -> Any:
        return () if obj is None else self.inlines

    def get_form(
        self, request: HttpRequest, obj: Tenant | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm]:
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Tenant:
        if change:
            # Not saved here: save_model does it through the services.
            return form.instance  # type: ignore[no-any-return]
        data = form.cleaned_data
        provisioned = services.tenant_provision(
            organization_name=data["organization_name"],
            billing_email=data["billing_email"],
            admin_email=data["admin_email"],
            plan=data["plan"],
            admin_password=data["admin_password"] or None,
        )
        tenant = provisioned.tenant
        note = f"Owner {provisioned.owner_email} can sign in at {tenant.primary_domain}."
        if provisioned.generated_password:
            note += f" Generated password (shown once): {provisioned.generated_password}"
        self.message_user(request, note, messages.INFO)
        return tenant

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        """A change goes through the same services as the app's own pages and API. On add,
        save_form has already provisioned and saved the organisation."""
        if not change:
            return
        data = form.cleaned_data
        services.tenant_profile_update(
            tenant=obj, organization_name=data["organization_name"], billing_email=data["billing_email"]
        )
        services.tenant_plan_change(tenant=obj, plan=data["plan"])
        changes = form.setting_changes()
        if changes:
            actor = ChangeActor(
                email=getattr(request.user, "email", ""),
                ip_address=client_address(request) or None,
                user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
                via="console",
            )
            try:
                services.tenant_settings_update(tenant=obj, changes=changes, actor=actor)
            except DomainError as exc:  # a guard's refusal (e.g. SSO-only without a provider)
                self.message_user(request, f"Settings not changed: {exc.detail}", messages.ERROR)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Domains are added, changed and removed by the services (one primary per tenant)."""
        domains = formset.save(commit=False)
        for removed in formset.deleted_objects:
            services.domain_remove(domain=removed)
        # The new primary first: it demotes the old one, which may then be saved as secondary.
        for domain in sorted(domains, key=lambda d: not d.is_primary):
            services.domain_save(
                tenant=form.instance, domain=domain.domain, is_primary=domain.is_primary, instance=domain
            )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change:
            for formset in formsets:
                self.save_formset(request, form, formset, change=change)

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return False


@admin.register(PooledSchema)
class PooledSchemaAdmin(admin.ModelAdmin):
    """Pre-cloned schemas waiting for a sign-up; filled and pruned by ``schema_pool_refill``."""

    list_display = ("schema_name", "template_fingerprint", "is_current", "created_at")
    ordering = ("created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[PooledSchema]:
        current = schema_fingerprint(settings.TENANT_TEMPLATE_SCHEMA)
        return (
            super()
            .get_queryset(request)
            .annotate(current=ExpressionWrapper(Q(template_fingerprint=current), output_field=BooleanField()))
        )

    @admin.display(description="Matches template", boolean=True, ordering="current")
    def is_current(self, entry: PooledSchema) -> bool:
        return bool(getattr(entry, "current", False))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: PooledSchema | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PooledSchema | None = None) -> bool:
        return False
