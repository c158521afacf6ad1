"""Public site pages: landing and sign-up."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from tenants import services
from tenants.emails import tenant_site_url
from tenants.forms import SignupForm
from tenants.plans import CATALOGUE


def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "tenants/landing.html", {"plans": CATALOGUE.items()})


def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        result = services.tenant_provision(**form.cleaned_data)
        login_url = tenant_site_url(result.tenant) + "accounts/login/?" + urlencode({"email": result.owner_email})
        return HttpResponseRedirect(login_url)
    return render(request, "tenants/signup.html", {"form": form, "plans": CATALOGUE.items()})
