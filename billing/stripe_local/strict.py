"""Unknown parameters refused as Stripe refuses them (``parameter_unknown``).

The real API answers 400 "Received unknown parameter: x" to a misspelt or removed parameter
(e.g. one that left in API version dahlia). So that a stand-in does not let such a bug through,
the parameters of each call (nested ones too) are checked against the request TypedDict that
stripe-python ships for that call (``stripe.params...``): the library's own, generated from
Stripe's OpenAPI spec for the pinned version. If the library is not importable, nothing is
checked.
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
import typing
from typing import Any

try:  # stripe-python's TypedDicts come from typing_extensions, which it depends on
    from typing_extensions import is_typeddict
except ImportError:  # pragma: no cover - without stripe installed nothing is checked anyway
    from typing import is_typeddict

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")

# (method, route pattern) -> "[namespace.]ClassName" of stripe-python's params TypedDict.
ROUTE_PARAMS: dict[tuple[str, str], str] = {
    ("POST", "/v1/customers"): "CustomerCreateParams",
    ("GET", "/v1/customers"): "CustomerListParams",
    ("GET", "/v1/customers/(cus_[^/]+)"): "CustomerRetrieveParams",
    ("POST", "/v1/customers/(cus_[^/]+)"): "CustomerModifyParams",
    ("DELETE", "/v1/customers/(cus_[^/]+)"): "CustomerDeleteParams",
    ("GET", "/v1/customers/(cus_[^/]+)/payment_methods"): "CustomerListPaymentMethodsParams",
    ("POST", "/v1/payment_methods"): "PaymentMethodCreateParams",
    ("GET", "/v1/payment_methods"): "PaymentMethodListParams",
    ("GET", "/v1/payment_methods/([^/]+)"): "PaymentMethodRetrieveParams",
    ("POST", "/v1/payment_methods/([^/]+)"): "PaymentMethodModifyParams",
    ("POST", "/v1/payment_methods/([^/]+)/attach"): "PaymentMethodAttachParams",
    ("POST", "/v1/payment_methods/([^/]+)/detach"): "PaymentMethodDetachParams",
    ("POST", "/v1/products"): "ProductCreateParams",
    ("GET", "/v1/products"): "ProductListParams",
    ("GET", "/v1/products/([^/]+)"): "ProductRetrieveParams",
    ("POST", "/v1/products/([^/]+)"): "ProductModifyParams",
    ("DELETE", "/v1/products/([^/]+)"): "ProductDeleteParams",
    ("GET", "/v1/products/([^/]+)/features"): "ProductListFeaturesParams",
    ("POST", "/v1/products/([^/]+)/features"): "ProductCreateFeatureParams",
    ("GET", "/v1/products/([^/]+)/features/(prodft_[^/]+)"): "ProductRetrieveFeatureParams",
    ("DELETE", "/v1/products/([^/]+)/features/(prodft_[^/]+)"): "ProductDeleteFeatureParams",
    ("POST", "/v1/entitlements/features"): "entitlements.FeatureCreateParams",
    ("GET", "/v1/entitlements/features"): "entitlements.FeatureListParams",
    ("GET", "/v1/entitlements/features/(feat_[^/]+)"): "entitlements.FeatureRetrieveParams",
    ("POST", "/v1/entitlements/features/(feat_[^/]+)"): "entitlements.FeatureModifyParams",
    ("POST", "/v1/prices"): "PriceCreateParams",
    ("GET", "/v1/prices"): "PriceListParams",
    ("GET", "/v1/prices/([^/]+)"): "PriceRetrieveParams",
    ("POST", "/v1/prices/([^/]+)"): "PriceModifyParams",
    ("GET", "/v1/plans"): "PlanListParams",
    ("GET", "/v1/plans/([^/]+)"): "PlanRetrieveParams",
    ("POST", "/v1/subscriptions"): "SubscriptionCreateParams",
    ("GET", "/v1/subscriptions"): "SubscriptionListParams",
    ("GET", "/v1/subscriptions/(sub_[^/]+)"): "SubscriptionRetrieveParams",
    ("POST", "/v1/subscriptions/(sub_[^/]+)"): "SubscriptionModifyParams",
    ("DELETE", "/v1/subscriptions/(sub_[^/]+)"): "SubscriptionCancelParams",
    ("POST", "/v1/subscriptions/(sub_[^/]+)/resume"): "SubscriptionResumeParams",
    ("GET", "/v1/subscription_items"): "SubscriptionItemListParams",
    ("GET", "/v1/subscription_items/(si_[^/]+)"): "SubscriptionItemRetrieveParams",
    ("POST", "/v1/subscription_items/(si_[^/]+)"): "SubscriptionItemModifyParams",
    ("DELETE", "/v1/subscription_items/(si_[^/]+)"): "SubscriptionItemDeleteParams",
    ("POST", "/v1/subscription_items"): "SubscriptionItemCreateParams",
    ("GET", "/v1/invoices"): "InvoiceListParams",
    ("POST", "/v1/invoices"): "InvoiceCreateParams",
    ("POST", "/v1/invoices/create_preview"): "InvoiceCreatePreviewParams",
    ("GET", "/v1/invoices/(in_[^/]+)"): "InvoiceRetrieveParams",
    ("POST", "/v1/invoices/(in_[^/]+)"): "InvoiceModifyParams",
    ("GET", "/v1/invoices/(in_[^/]+)/lines"): "InvoiceListLinesParams",
    ("POST", "/v1/invoices/(in_[^/]+)/finalize"): "InvoiceFinalizeInvoiceParams",
    ("POST", "/v1/invoices/(in_[^/]+)/pay"): "InvoicePayParams",
    ("POST", "/v1/invoices/(in_[^/]+)/void"): "InvoiceVoidInvoiceParams",
    ("POST", "/v1/invoices/(in_[^/]+)/mark_uncollectible"): "InvoiceMarkUncollectibleParams",
    ("DELETE", "/v1/invoices/(in_[^/]+)"): "InvoiceDeleteParams",
    ("POST", "/v1/invoiceitems"): "InvoiceItemCreateParams",
    ("GET", "/v1/invoiceitems"): "InvoiceItemListParams",
    ("GET", "/v1/invoiceitems/(ii_[^/]+)"): "InvoiceItemRetrieveParams",
    ("DELETE", "/v1/invoiceitems/(ii_[^/]+)"): "InvoiceItemDeleteParams",
    ("POST", "/v1/checkout/sessions"): "checkout.SessionCreateParams",
    ("GET", "/v1/checkout/sessions"): "checkout.SessionListParams",
    ("GET", "/v1/checkout/sessions/(cs_[^/]+)"): "checkout.SessionRetrieveParams",
    ("POST", "/v1/checkout/sessions/(cs_[^/]+)/expire"): "checkout.SessionExpireParams",
    ("GET", "/v1/checkout/sessions/(cs_[^/]+)/line_items"): "checkout.SessionListLineItemsParams",
    ("POST", "/v1/billing_portal/sessions"): "billing_portal.SessionCreateParams",
    ("POST", "/v1/billing_portal/configurations"): "billing_portal.ConfigurationCreateParams",
    ("GET", "/v1/billing_portal/configurations"): "billing_portal.ConfigurationListParams",
    ("GET", "/v1/billing_portal/configurations/(bpc_[^/]+)"): "billing_portal.ConfigurationRetrieveParams",
    ("POST", "/v1/billing_portal/configurations/(bpc_[^/]+)"): "billing_portal.ConfigurationModifyParams",
    ("POST", "/v1/billing/meters"): "billing.MeterCreateParams",
    ("GET", "/v1/billing/meters"): "billing.MeterListParams",
    ("GET", "/v1/billing/meters/(mtr_[^/]+)"): "billing.MeterRetrieveParams",
    ("POST", "/v1/billing/meters/(mtr_[^/]+)"): "billing.MeterModifyParams",
    ("POST", "/v1/billing/meters/(mtr_[^/]+)/deactivate"): "billing.MeterDeactivateParams",
    ("POST", "/v1/billing/meters/(mtr_[^/]+)/reactivate"): "billing.MeterReactivateParams",
    ("GET", "/v1/billing/meters/(mtr_[^/]+)/event_summaries"): "billing.MeterListEventSummariesParams",
    ("POST", "/v1/billing/meter_events"): "billing.MeterEventCreateParams",
    ("POST", "/v1/billing/meter_event_adjustments"): "billing.MeterEventAdjustmentCreateParams",
    ("POST", "/v2/billing/meter_events"): "v2.billing.MeterEventCreateParams",
    ("POST", "/v2/billing/meter_event_stream"): "v2.billing.MeterEventStreamCreateParams",
    ("POST", "/v2/billing/meter_event_adjustments"): "v2.billing.MeterEventAdjustmentCreateParams",
    ("GET", "/v1/events"): "EventListParams",
    ("GET", "/v1/events/(evt_[^/]+)"): "EventRetrieveParams",
    ("POST", "/v1/webhook_endpoints"): "WebhookEndpointCreateParams",
    ("GET", "/v1/webhook_endpoints"): "WebhookEndpointListParams",
    ("GET", "/v1/webhook_endpoints/(we_[^/]+)"): "WebhookEndpointRetrieveParams",
    ("POST", "/v1/webhook_endpoints/(we_[^/]+)"): "WebhookEndpointModifyParams",
    ("DELETE", "/v1/webhook_endpoints/(we_[^/]+)"): "WebhookEndpointDeleteParams",
    ("POST", "/v1/test_helpers/test_clocks"): "test_helpers.TestClockCreateParams",
    ("GET", "/v1/test_helpers/test_clocks"): "test_helpers.TestClockListParams",
    ("GET", "/v1/test_helpers/test_clocks/(clock_[^/]+)"): "test_helpers.TestClockRetrieveParams",
    ("DELETE", "/v1/test_helpers/test_clocks/(clock_[^/]+)"): "test_helpers.TestClockDeleteParams",
    ("POST", "/v1/test_helpers/test_clocks/(clock_[^/]+)/advance"): "test_helpers.TestClockAdvanceParams",
}


@functools.cache
def params_class(spec: str) -> Any:
    """stripe-python's request TypedDict named by ``spec``, or None if it cannot be found."""
    namespace, _, name = spec.rpartition(".")
    snake = _CAMEL.sub("_", name.removesuffix("Params")).lower()
    module_name = "stripe.params" + (f".{namespace}" if namespace else "") + f"._{snake}_params"
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return None


def allowed_params(spec: str) -> frozenset[str] | None:
    """The top-level parameter names ``spec`` allows, or None if unknown."""
    cls = params_class(spec)
    if cls is None:
        return None
    return frozenset(cls.__required_keys__ | cls.__optional_keys__)


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    """Each key's type, evaluated one by one (some refer to names only imported for type
    checkers; those are skipped)."""
    module = sys.modules.get(cls.__module__)
    namespace = vars(module) if module else {}
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for key, annotation in getattr(klass, "__annotations__", {}).items():
            ref = typing.ForwardRef(annotation) if isinstance(annotation, str) else annotation
            try:
                hints[key] = typing._eval_type(ref, namespace, None)  # type: ignore[attr-defined]
            except Exception:  # noqa: S112 - an unresolvable hint only means "not checked"
                continue
    return hints


def _nested_classes(annotation: Any) -> list[Any]:
    """The TypedDicts a hint allows (through NotRequired, Union, List...)."""
    if is_typeddict(annotation):
        return [annotation]
    found: list[Any] = []
    for arg in typing.get_args(annotation):
        found.extend(_nested_classes(arg))
    return found


def _unknown_in(cls: Any, value: dict[str, Any], prefix: str) -> str | None:
    allowed = cls.__required_keys__ | cls.__optional_keys__
    hints = _hints(cls)
    for key, inner in value.items():
        name = f"{prefix}[{key}]" if prefix else key
        if key not in allowed:
            return name
        classes = _nested_classes(hints.get(key))
        if len(classes) != 1:
            continue
        if isinstance(inner, dict):
            found = _unknown_in(classes[0], inner, name)
        elif isinstance(inner, list):
            found = next(
                (
                    hit
                    for n, item in enumerate(inner)
                    if isinstance(item, dict) and (hit := _unknown_in(classes[0], item, f"{name}[{n}]"))
                ),
                None,
            )
        else:
            found = None
        if found:
            return found
    return None


def unknown_param(spec: str, params: dict[str, Any]) -> str | None:
    """The first parameter (``items[0][pricee]`` style) the API version does not know."""
    cls = params_class(spec)
    if cls is None:
        return None
    return _unknown_in(cls, params, "")
