"""Public site pages: landing and sign-up."""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from leanvibe.access import public_page
from tenants import services
from tenants.api.views import SignupRateThrottle
from tenants.forms import SignupForm
from tenants.links import tenant_url
from tenants.plans import CATALOGUE, Plan, PlanLimits


def _plans() -> list[tuple[Plan, PlanLimits]]:
    return [(Plan(key), limits) for key, limits in CATALOGUE.items()]


@public_page("the marketing page with the plans")
def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "tenants/landing.html", {"plans": _plans()})


def _render_signup(request: HttpRequest, form: SignupForm, status: int = 200) -> HttpResponse:
    return render(request, "tenants/signup.html", {"form": form, "plans": _plans()}, status=status)


@public_page("self-service sign-up: the visitor has no account yet")
def signup(request: HttpRequest) -> HttpResponse:
    """Provision an organisation and send its owner to sign in on the new subdomain."""
    if request.method != "POST":
        initial_plan = request.GET.get("plan")
        form = SignupForm(initial={"plan": initial_plan if initial_plan in Plan.values else Plan.STARTER})
        return _render_signup(request, form)

    form = SignupForm(request.POST)
    if not form.is_valid():
        return _render_signup(request, form, status=400)
    # The same per-address budget as POST /api/v1/tenants: both create organisations.
    throttle = SignupRateThrottle()
    if not throttle.allow_request(request, None):  # type: ignore[arg-type]
        minutes = max(1, round((throttle.wait() or 60) / 60))
        form.add_error(None, f"Too many organisations created from your address. Try again in {minutes} min.")
        return _render_signup(request, form, status=429)
    try:
        result = services.tenant_provision(**form.cleaned_data)
    except ValidationError as exc:
        # Rules checked only by the service (model validation) still land next to their field.
        if hasattr(exc, "error_dict"):
            for field, errors in exc.error_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form.add_error(None, exc)
        return _render_signup(request, form, status=400)
    query = urlencode({"email": result.owner_email})
    return HttpResponseRedirect(tenant_url(result.tenant, f"/accounts/login/?{query}"))
