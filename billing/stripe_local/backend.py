"""The API of the local Stripe: resources, billing, test clocks and events, under one lock.

``Backend.handle`` answers one API call (already decoded) and returns the status and body.
Objects are built from Stripe's examples (``store.example``), kept in ``state["objects"]``
by id, and rendered through ``render`` (private keys dropped, items' prices refreshed,
``expand`` applied). Events are made by ``_emit`` and handed to ``on_event`` (the webhook
delivery) while the lock is held; the delivery thread does the HTTP outside it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
import traceback
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .errors import ApiError, card_declined, invalid, missing
from .store import (
    API_VERSION,
    Obj,
    add_interval,
    example,
    load_state,
    new_id,
    public,
    save_state,
)
from .strict import ROUTE_PARAMS, unknown_param

DAY = 86400
IDEMPOTENCY_TTL = 24 * 3600
METER_IDENTIFIER_TTL = 24 * 3600

# Stripe's test payment methods: id -> (brand, last4, behaviour).
# behaviour: "ok"; "charge_fail" (attaches, every charge declined); "decline" (declined at attach).
TEST_PAYMENT_METHODS: dict[str, tuple[str, str, str]] = {
    "pm_card_visa": ("visa", "4242", "ok"),
    "pm_card_mastercard": ("mastercard", "4444", "ok"),
    "pm_card_amex": ("amex", "8431", "ok"),
    "pm_card_chargeCustomerFail": ("visa", "0341", "charge_fail"),
    "pm_card_chargeDeclined": ("visa", "0002", "decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "insufficient_funds"),
}
TEST_TOKENS = {
    "tok_visa": "pm_card_visa",
    "tok_mastercard": "pm_card_mastercard",
    "tok_amex": "pm_card_amex",
    "tok_chargeCustomerFail": "pm_card_chargeCustomerFail",
    "tok_chargeDeclined": "pm_card_chargeDeclined",
    "tok_chargeDeclinedInsufficientFunds": "pm_card_chargeDeclinedInsufficientFunds",
}
TEST_CARD_NUMBERS = {
    "4242424242424242": "pm_card_visa",
    "5555555555554444": "pm_card_mastercard",
    "378282246310005": "pm_card_amex",
    "4000000000000341": "pm_card_chargeCustomerFail",
    "4000000000000002": "pm_card_chargeDeclined",
    "4000000000009995": "pm_card_chargeDeclinedInsufficientFunds",
}

_KIND_BY_PREFIX = {
    "cus_": "customer",
    "pm_": "payment_method",
    "prod_": "product",
    "price_": "price",
    "sub_": "subscription",
    "si_": "subscription_item",
    "in_": "invoice",
    "ii_": "invoiceitem",
    "cs_": "checkout.session",
    "bps_": "billing_portal.session",
    "mtr_": "billing.meter",
    "evt_": "event",
    "we_": "webhook_endpoint",
    "clock_": "test_helpers.test_clock",
}


def _kind_of(object_id: str) -> str:
    for prefix, kind in _KIND_BY_PREFIX.items():
        if object_id.startswith(prefix):
            return kind
    return "object"


def _int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {value}", param=param) from None


def _decimal_str(value: Any, param: str) -> str:
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except InvalidOperation:
        raise invalid(f"Invalid decimal: {value}", param=param) from None


def _choice(params: Obj, name: str, choices: tuple[str, ...], default: str) -> str:
    """An enum parameter, refused like Stripe when it is not one of ``choices``."""
    value = str(params.get(name) or default)
    if value not in choices:
        listed = ", ".join(choices[:-1]) + f", or {choices[-1]}"
        raise invalid(f"Invalid {name}: must be one of {listed}", param=name)
    return value


_PRORATION = ("always_invoice", "create_prorations", "none")
_PAYMENT_BEHAVIOR = ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete")
_COLLECTION = ("charge_automatically", "send_invoice")


def _bool(value: Any) -> bool:
    return value in (True, "true", "True", "1", 1)


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def _diff(before: Obj, after: Obj) -> Obj:
    """Stripe's ``previous_attributes``: the old value of each field that changed, nested dicts
    as partial dicts (``{"invoice_settings": {"default_payment_method": None}}``), lists whole."""
    previous: Obj = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and old.get("object") != "list":
            previous[key] = _diff(old, new)
        else:
            previous[key] = old
    return previous


class Backend:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        state_path: Path | None = None,
        retry_days: tuple[int, ...] = (3, 5, 7),
        after_final_failure: str = "canceled",
        on_event: Callable[[Obj, list[Obj]], None] | None = None,
        upcoming_days: int = 3,
        strict_params: bool = True,
    ) -> None:
        self.lock = threading.RLock()
        self.api_key = api_key
        self.state_path = state_path
        self.state: Obj = load_state(state_path)
        self.retry_days = retry_days
        self.after_final_failure = after_final_failure
        self.upcoming_days = upcoming_days
        self.on_event = on_event
        self.base_url = "http://127.0.0.1"
        self._request: Obj = {"id": None, "idempotency_key": None}
        self._muted = False  # True while a preview runs on a throw-away copy of the state
        self.strict_params = strict_params
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any], str | None]] = []
        self._register_routes()

    # --- storage ------------------------------------------------------------------------
    @property
    def objects(self) -> dict[str, Obj]:
        objects: dict[str, Obj] = self.state["objects"]
        return objects

    def _store(self, obj: Obj) -> Obj:
        if "_seq" not in obj:
            self.state["seq"] += 1
            obj["_seq"] = self.state["seq"]
        self.objects[obj["id"]] = obj
        return obj

    def _get(self, kind: str, object_id: Any, *, param: str = "id") -> Obj:
        obj = self.objects.get(str(object_id)) if object_id else None
        if obj is None or obj.get("object") != kind or obj.get("_deleted"):
            raise missing(kind.split(".")[-1].replace("_", " "), str(object_id), param=param)
        return obj

    def _all(self, kind: str) -> list[Obj]:
        return [o for o in self.objects.values() if o.get("object") == kind and not o.get("_deleted")]

    _LOCAL_URL = re.compile(r"^http://127\.0\.0\.1:\d+(?=/(?:checkout|portal|invoice)/)")

    def rebase_urls(self, base_url: str) -> None:
        """Point hosted-page URLs saved by an earlier run (another port) at this server."""
        self.base_url = base_url
        with self.lock:
            for obj in self.objects.values():
                for key in ("url", "hosted_invoice_url", "invoice_pdf"):
                    value = obj.get(key)
                    if isinstance(value, str):
                        obj[key] = self._LOCAL_URL.sub(base_url, value)

    def save(self) -> None:
        if self.state_path is not None:
            save_state(self.state_path, self.state)

    # --- time ---------------------------------------------------------------------------
    def now(self, customer_id: str | None = None) -> int:
        """Objects of a customer on a test clock live on the clock's frozen time."""
        if customer_id:
            customer = self.objects.get(customer_id)
            clock_id = customer.get("test_clock") if customer else None
            clock = self.objects.get(clock_id) if clock_id else None
            if clock:
                return int(clock["frozen_time"])
        return int(time.time())

    # --- rendering ----------------------------------------------------------------------
    def _plan_for(self, price: Obj) -> Obj:
        plan = example("plan")
        recurring = price.get("recurring") or {}
        plan.update(
            active=price["active"],
            amount=price["unit_amount"],
            amount_decimal=price["unit_amount_decimal"],
            billing_scheme=price["billing_scheme"],
            created=price["created"],
            currency=price["currency"],
            id=price["id"],
            interval=recurring.get("interval"),
            interval_count=recurring.get("interval_count"),
            metadata=price["metadata"],
            meter=recurring.get("meter"),
            nickname=price["nickname"],
            product=price["product"],
            transform_usage=None,
            trial_period_days=recurring.get("trial_period_days"),
            usage_type=recurring.get("usage_type", "licensed"),
        )
        return plan

    def _item_public(self, item: Obj) -> Obj:
        out: Obj = public(item)
        price = self.objects.get(item["_price"])
        if price is not None:
            out["price"] = public(price)
            out["plan"] = self._plan_for(price)
        return out

    def _public(self, obj: Obj) -> Obj:
        out: Obj = public(obj)
        if obj.get("object") == "subscription":
            items = [self._item_public(i) for i in obj["items"]["data"]]
            out["items"]["data"] = items
        elif obj.get("object") == "subscription_item":
            out = self._item_public(obj)
        elif obj.get("object") == "product_feature":
            out = {
                "id": obj["id"],
                "object": "product_feature",
                "entitlement_feature": public(self.objects[obj["_feature"]]),
                "livemode": obj["livemode"],
            }
        return out

    def _expand(self, node: Any, parts: list[str], depth: int = 0) -> None:
        if depth > 4 or not parts or not isinstance(node, dict):
            return
        key, rest = parts[0], parts[1:]
        if key == "data" and node.get("object") == "list":
            for item in node.get("data", []):
                self._expand(item, rest, depth + 1)
            return
        if key not in node:
            included = self._includable(node, key)
            if included is None:
                return
            node[key] = included
        value = node.get(key)
        if isinstance(value, str) and value in self.objects:
            target = self.objects[value]
            value = node[key] = self._public(target)
        if isinstance(value, list):
            for n, entry in enumerate(value):
                if isinstance(entry, str) and entry in self.objects:  # e.g. ``discounts``
                    entry = value[n] = self._public(self.objects[entry])
                self._expand(entry, rest, depth + 1)
        elif rest:
            self._expand(value, rest, depth + 1)

    def _includable(self, node: Obj, key: str) -> Any:
        """Fields Stripe leaves out unless expanded (``customer.sources``, ``session.line_items``...)."""
        kind, object_id = node.get("object"), node.get("id")

        def listing(data: list[Obj], url: str) -> Obj:
            return {"object": "list", "data": data, "has_more": False, "url": url}

        if kind == "customer" and key in ("sources", "tax_ids"):
            return listing([], f"/v1/customers/{object_id}/{key}")
        if kind == "customer" and key == "subscriptions":
            subs = [
                self._public(s)
                for s in sorted(self._all("subscription"), key=lambda o: -o["_seq"])
                if s["customer"] == object_id and s["status"] not in ("canceled", "incomplete_expired")
            ]
            return listing(subs, f"/v1/customers/{object_id}/subscriptions")
        if kind == "customer" and key in ("cash_balance", "invoice_credit_balance"):
            return {} if key == "invoice_credit_balance" else None
        if kind == "checkout.session" and key == "line_items" and object_id in self.objects:
            return self.checkout_line_items({}, str(object_id))
        if kind == "price" and key == "currency_options":
            return {
                node["currency"]: {
                    "custom_unit_amount": None,
                    "tax_behavior": node["tax_behavior"],
                    "unit_amount": node["unit_amount"],
                    "unit_amount_decimal": node["unit_amount_decimal"],
                }
            }
        if kind == "invoice" and key == "payments":
            return listing(self._invoice_payments(node), f"/v1/invoice_payments?invoice={object_id}")
        if kind == "invoice" and key == "confirmation_secret":
            if node.get("status") != "open" or not node.get("amount_remaining"):
                return None
            return {"client_secret": f"pi_local_{object_id}_secret_local", "type": "payment_intent"}
        if kind == "price" and key == "tiers" and object_id in self.objects:
            return self.objects[str(object_id)].get("_tiers")
        if key == "breakdown" and "amount_discount" in node:  # total_details.breakdown
            return {"discounts": [], "taxes": []}
        return None

    def _invoice_payments(self, invoice: Obj) -> list[Obj]:
        """The invoice's payment as Stripe lists it (there are no PaymentIntents here)."""
        if invoice.get("status") not in ("open", "paid") or not invoice.get("amount_due"):
            return []
        payment = example("invoice_payment")
        paid = invoice["status"] == "paid"
        payment.update(
            id=f"inpay_{str(invoice['id'])[3:]}",
            amount_paid=invoice["amount_paid"] if paid else None,
            amount_requested=invoice["amount_due"],
            created=invoice["created"],
            currency=invoice["currency"],
            invoice=invoice["id"],
            is_default=True,
            livemode=False,
            payment={"type": "payment_intent", "payment_intent": f"pi_local_{str(invoice['id'])[3:]}"},
            status="paid" if paid else "open",
            status_transitions={"canceled_at": None, "paid_at": invoice["status_transitions"]["paid_at"]},
        )
        return [payment]

    def render(self, obj: Obj, expand: Any = None) -> Obj:
        out = self._public(obj)
        for path in _as_list(expand):
            self._expand(out, str(path).split("."))
        return out

    def _list(self, objs: list[Obj], params: Obj, url: str) -> Obj:
        """Stripe's list: newest first, ``limit`` / ``starting_after`` / ``ending_before``."""
        objs = sorted(objs, key=lambda o: o.get("_seq", 0), reverse=True)
        limit = max(1, min(100, _int(params.get("limit", 10), "limit")))
        ids = [o["id"] for o in objs]
        if params.get("starting_after"):
            cursor = params["starting_after"]
            if cursor not in ids:
                raise missing("object", cursor, param="starting_after")
            objs = objs[ids.index(cursor) + 1 :]
            page, has_more = objs[:limit], len(objs) > limit
        elif params.get("ending_before"):
            cursor = params["ending_before"]
            if cursor not in ids:
                raise missing("object", cursor, param="ending_before")
            before = objs[: ids.index(cursor)]
            page, has_more = before[-limit:], len(before) > limit
        else:
            page, has_more = objs[:limit], len(objs) > limit
        result: Obj = {
            "object": "list",
            "data": [self._public(o) for o in page],
            "has_more": has_more,
            "url": url,
        }
        for path in _as_list(params.get("expand")):
            self._expand(result, str(path).split("."))
        return result

    @staticmethod
    def _created_filter(objs: list[Obj], created: Any, field: str = "created") -> list[Obj]:
        if isinstance(created, dict):
            ops = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
            for op, value in created.items():
                if op in ops:
                    bound = _int(value, f"{field}[{op}]")
                    objs = [o for o in objs if ops[op](int(o[field]), bound)]
        elif created not in (None, ""):
            objs = [o for o in objs if int(o[field]) == _int(created, field)]
        return objs

    @staticmethod
    def _iso(ts: float) -> str:
        moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def meter_event_session(self, params: Obj) -> Obj:
        """A 15-minute token for ``/v2/billing/meter_event_stream`` (the meter_events base)."""
        token = "mes_token_" + new_id("", 32)
        expires = time.time() + 15 * 60
        self.state.setdefault("meter_sessions", {})[token] = expires
        return {
            "id": new_id("mes_"),
            "object": "v2.billing.meter_event_session",
            "authentication_token": token,
            "created": self._iso(time.time()),
            "expires_at": self._iso(expires),
            "livemode": False,
        }

    def meter_event_stream(self, params: Obj) -> Obj:
        events = params.get("events")
        if not isinstance(events, list) or not events:
            raise invalid("Missing required param: events.", param="events")
        for event in events:
            self.meter_event_create_v2(dict(event))
        return {}

    def _cancel_meter_event(self, params: Obj) -> str:
        cancel = params.get("cancel") or {}
        identifier = cancel.get("identifier") if isinstance(cancel, dict) else None
        if not identifier:
            raise invalid("Missing required param: cancel[identifier].", param="cancel[identifier]")
        events = self.state["meter_events"]
        self.state["meter_events"] = [e for e in events if e["identifier"] != identifier]
        return str(identifier)

    def meter_event_adjustment(self, params: Obj) -> Obj:
        identifier = self._cancel_meter_event(params)
        adjustment = example("billing.meter_event_adjustment")
        adjustment.update(
            cancel={"identifier": identifier},
            event_name=params.get("event_name"),
            livemode=False,
            status="complete",
            type="cancel",
        )
        return adjustment

    def meter_event_adjustment_v2(self, params: Obj) -> Obj:
        identifier = self._cancel_meter_event(params)
        return {
            "id": new_id("mea_"),
            "object": "v2.billing.meter_event_adjustment",
            "cancel": {"identifier": identifier},
            "created": self._iso(time.time()),
            "event_name": params.get("event_name"),
            "livemode": False,
            "status": "complete",
            "type": "cancel",
        }

    # --- events -------------------------------------------------------------------------
    def _emit(self, type_: str, obj: Obj, *, previous: Obj | None = None, at: int | None = None) -> Obj:
        event = example("event")
        customer_id = obj.get("customer") if isinstance(obj.get("customer"), str) else None
        if obj.get("object") == "customer":
            customer_id = obj["id"]
        data: Obj = {"object": self._public(obj)}
        if previous:
            data["previous_attributes"] = previous
        endpoints = [
            e
            for e in self._all("webhook_endpoint")
            if e["status"] == "enabled" and ("*" in e["enabled_events"] or type_ in e["enabled_events"])
        ]
        event.update(
            id=new_id("evt_"),
            api_version=API_VERSION,
            created=at if at is not None else self.now(customer_id),
            data=data,
            livemode=False,
            pending_webhooks=len(endpoints),
            request=dict(self._request),
            type=type_,
        )
        if "context" in event:
            event["context"] = None
        self._store(event)
        if self.on_event is not None and endpoints and not self._muted:
            self.on_event(public(event), [public(e) | {"secret": e["secret"]} for e in endpoints])
        return event

    def _updated(self, obj: Obj, before: Obj, type_: str, *, at: int | None = None) -> None:
        previous = _diff(before, self._public(obj))
        if previous:
            self._emit(type_, obj, previous=previous, at=at)

    @staticmethod
    def _merge_metadata(obj: Obj, params: Obj) -> None:
        if "metadata" not in params:
            return
        metadata = params["metadata"]
        if metadata in ("", None):
            obj["metadata"] = {}
            return
        current = dict(obj.get("metadata") or {})
        for key, value in metadata.items():
            if value in ("", None):
                current.pop(key, None)
            else:
                current[key] = str(value)
        obj["metadata"] = current

    # --- dispatch -----------------------------------------------------------------------
    def route(self, method: str, pattern: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            spec = ROUTE_PARAMS.get((method, pattern))
            self._routes.append((method, re.compile("^" + pattern + "$"), fn, spec))
            return fn

        return register

    def check_auth(self, authorization: str) -> None:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise ApiError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        ok = key == self.api_key if self.api_key else key.startswith(("sk_test_", "rk_test_"))
        sessions: dict[str, float] = self.state.setdefault("meter_sessions", {})
        if not ok and sessions.get(key, 0) > time.time():
            ok = True  # a v2 meter event session token (meter_event_stream)
        if not ok:
            shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
            raise ApiError(
                401, f"Invalid API Key provided: {shown}", code="api_key_expired" if False else None
            )

    def handle(
        self, method: str, path: str, params: Obj, *, idempotency_key: str | None = None
    ) -> tuple[int, Obj, dict[str, str]]:
        """Answer one API call: ``(status, body, extra headers)``."""
        with self.lock:
            request_id = new_id("req_", 14)
            self._request = {"id": request_id, "idempotency_key": idempotency_key}
            headers = {"Request-Id": request_id}
            fingerprint = ""
            if idempotency_key and method in ("POST", "DELETE"):
                fingerprint = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
                stored = self._idempotent(method, path, idempotency_key, fingerprint)
                if stored is not None:
                    headers.update({"Idempotent-Replayed": "true", "Idempotency-Key": idempotency_key})
                    return stored["status"], stored["body"], headers
            try:
                status, body = 200, self._dispatch(method, path, params)
            except ApiError as exc:
                status, body = exc.status, exc.body()
                body["error"]["request_log_url"] = f"{self.base_url}/logs/{request_id}"
                headers.update(exc.headers)
            except Exception as exc:  # a bug here: answer like Stripe's 500 so the client sees it
                traceback.print_exc()
                status = 500
                body = {"error": {"type": "api_error", "message": f"Local Stripe error: {exc!r}"}}
                headers["Stripe-Should-Retry"] = "false"
            finally:
                self._request = {"id": None, "idempotency_key": None}
            if idempotency_key and method in ("POST", "DELETE") and status < 500:
                headers["Idempotency-Key"] = idempotency_key
                self.state["idempotency"][idempotency_key] = {
                    "method": method,
                    "path": path,
                    "fingerprint": fingerprint,
                    "status": status,
                    "body": body,
                    "at": time.time(),
                }
            if method != "GET":
                self.save()
            return status, body, headers

    def _idempotent(self, method: str, path: str, key: str, fingerprint: str) -> Obj | None:
        store: dict[str, Obj] = self.state["idempotency"]
        cutoff = time.time() - IDEMPOTENCY_TTL
        for old in [k for k, v in store.items() if v["at"] < cutoff]:
            del store[old]
        stored = store.get(key)
        if stored is None:
            return None
        if stored["method"] != method or stored["path"] != path or stored["fingerprint"] != fingerprint:
            error = ApiError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they were "
                f"first used with. Try using a key other than '{key}' if you meant to execute a "
                "different request.",
                type="idempotency_error",
            )
            return {"status": 400, "body": error.body()}
        return stored

    @staticmethod
    def _check_params(spec: str, params: Obj) -> None:
        unknown = unknown_param(spec, params)
        if unknown is not None:
            raise ApiError(
                400, f"Received unknown parameter: {unknown}", code="parameter_unknown", param=unknown
            )

    def _dispatch(self, method: str, path: str, params: Obj) -> Obj:
        allowed = False
        for route_method, pattern, fn, spec in self._routes:
            match = pattern.match(path)
            if match:
                allowed = True
                if route_method == method:
                    if self.strict_params and spec:
                        self._check_params(spec, params)
                    result: Obj = fn(params, *match.groups())
                    return result
        if allowed:
            raise invalid(f"Unrecognized request URL ({method}: {path}).")
        raise ApiError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )

    # --- routes -------------------------------------------------------------------------
    def _register_routes(self) -> None:
        r = self.route
        r("GET", "/v1/account")(self.account)
        # Resources the local Stripe never creates (no charges, intents, coupons...): their lists
        # are empty, so a full sync (``djstripe_sync_models``) runs without 404s.
        for base in (
            "accounts",
            "application_fees",
            "balance_transactions",
            "charges",
            "credit_notes",
            "disputes",
            "files",
            "payment_intents",
            "payment_links",
            "payouts",
            "quotes",
            "refunds",
            "setup_intents",
            "shipping_rates",
            "subscription_schedules",
            "tax_ids",
            "tax_rates",
            "transfers",
            "billing/alerts",
        ):
            r("GET", f"/v1/{base}")(lambda params, base=base: self._list([], params, f"/v1/{base}"))
        for sub_list in ("sources", "tax_ids", "balance_transactions", "discounts"):
            r("GET", f"/v1/customers/(cus_[^/]+)/{sub_list}")(
                lambda params, cid, sub_list=sub_list: self._customer_sub_list(params, cid, sub_list)
            )
        r("POST", "/v1/coupons")(self.coupon_create)
        r("GET", "/v1/coupons")(self.coupon_list)
        r("GET", "/v1/coupons/([^/]+)")(self.coupon_retrieve)
        r("POST", "/v1/coupons/([^/]+)")(self.coupon_update)
        r("DELETE", "/v1/coupons/([^/]+)")(self.coupon_delete)
        r("POST", "/v1/promotion_codes")(self.promo_create)
        r("GET", "/v1/promotion_codes")(self.promo_list)
        r("GET", "/v1/promotion_codes/(promo_[^/]+)")(self.promo_retrieve)
        r("POST", "/v1/promotion_codes/(promo_[^/]+)")(self.promo_update)
        r("GET", "/v1/plans")(self.plan_list)
        r("GET", "/v1/plans/([^/]+)")(self.plan_retrieve)
        r("GET", "/v1/accounts/(acct_[^/]+)")(lambda params, _id: self.account(params))
        for kind, base in (
            ("customer", "/v1/customers"),
            ("subscription", "/v1/subscriptions"),
            ("price", "/v1/prices"),
            ("product", "/v1/products"),
            ("invoice", "/v1/invoices"),
        ):
            r("GET", base + "/search")(
                lambda params, kind=kind, base=base: self._search(kind, params, base + "/search")
            )
        r("POST", "/v1/customers")(self.customer_create)
        r("GET", "/v1/customers")(self.customer_list)
        r("GET", "/v1/customers/(cus_[^/]+)")(self.customer_retrieve)
        r("POST", "/v1/customers/(cus_[^/]+)")(self.customer_update)
        r("DELETE", "/v1/customers/(cus_[^/]+)")(self.customer_delete)
        r("GET", "/v1/customers/(cus_[^/]+)/payment_methods")(self.customer_payment_methods)
        r("POST", "/v1/payment_methods")(self.pm_create)
        r("GET", "/v1/payment_methods")(self.pm_list)
        r("GET", "/v1/payment_methods/([^/]+)")(self.pm_retrieve)
        r("POST", "/v1/payment_methods/([^/]+)")(self.pm_update)
        r("POST", "/v1/payment_methods/([^/]+)/attach")(self.pm_attach)
        r("POST", "/v1/payment_methods/([^/]+)/detach")(self.pm_detach)
        r("POST", "/v1/products")(self.product_create)
        r("GET", "/v1/products")(self.product_list)
        r("GET", "/v1/products/([^/]+)")(self.product_retrieve)
        r("POST", "/v1/products/([^/]+)")(self.product_update)
        r("DELETE", "/v1/products/([^/]+)")(self.product_delete)
        r("GET", "/v1/products/([^/]+)/features")(self.product_feature_list)
        r("POST", "/v1/products/([^/]+)/features")(self.product_feature_create)
        r("GET", "/v1/products/([^/]+)/features/(prodft_[^/]+)")(self.product_feature_retrieve)
        r("DELETE", "/v1/products/([^/]+)/features/(prodft_[^/]+)")(self.product_feature_delete)
        r("POST", "/v1/entitlements/features")(self.feature_create)
        r("GET", "/v1/entitlements/features")(self.feature_list)
        r("GET", "/v1/entitlements/features/(feat_[^/]+)")(self.feature_retrieve)
        r("POST", "/v1/entitlements/features/(feat_[^/]+)")(self.feature_update)
        r("POST", "/v1/prices")(self.price_create)
        r("GET", "/v1/prices")(self.price_list)
        r("GET", "/v1/prices/([^/]+)")(self.price_retrieve)
        r("POST", "/v1/prices/([^/]+)")(self.price_update)
        r("POST", "/v1/subscriptions")(self.subscription_create)
        r("GET", "/v1/subscriptions")(self.subscription_list)
        r("GET", "/v1/subscriptions/(sub_[^/]+)")(self.subscription_retrieve)
        r("POST", "/v1/subscriptions/(sub_[^/]+)")(self.subscription_update)
        r("DELETE", "/v1/subscriptions/(sub_[^/]+)")(self.subscription_cancel)
        r("POST", "/v1/subscriptions/(sub_[^/]+)/resume")(self.subscription_resume)
        r("GET", "/v1/subscription_items")(self.item_list)
        r("GET", "/v1/subscription_items/(si_[^/]+)")(self.item_retrieve)
        r("POST", "/v1/subscription_items/(si_[^/]+)")(self.item_update)
        r("DELETE", "/v1/subscription_items/(si_[^/]+)")(self.item_delete)
        r("POST", "/v1/subscription_items")(self.item_create)
        r("GET", "/v1/invoices")(self.invoice_list)
        r("POST", "/v1/invoices")(self.invoice_create)
        r("POST", "/v1/invoices/create_preview")(self.invoice_preview)
        r("GET", "/v1/invoices/(in_[^/]+)")(self.invoice_retrieve)
        r("POST", "/v1/invoices/(in_[^/]+)")(self.invoice_update)
        r("GET", "/v1/invoices/(in_[^/]+)/lines")(self.invoice_lines)
        r("POST", "/v1/invoices/(in_[^/]+)/finalize")(self.invoice_finalize)
        r("POST", "/v1/invoices/(in_[^/]+)/pay")(self.invoice_pay)
        r("POST", "/v1/invoices/(in_[^/]+)/void")(self.invoice_void)
        r("POST", "/v1/invoices/(in_[^/]+)/mark_uncollectible")(self.invoice_uncollectible)
        r("DELETE", "/v1/invoices/(in_[^/]+)")(self.invoice_delete)
        r("POST", "/v1/invoiceitems")(self.invoiceitem_create)
        r("GET", "/v1/invoiceitems")(self.invoiceitem_list)
        r("GET", "/v1/invoiceitems/(ii_[^/]+)")(self.invoiceitem_retrieve)
        r("DELETE", "/v1/invoiceitems/(ii_[^/]+)")(self.invoiceitem_delete)
        r("POST", "/v1/checkout/sessions")(self.checkout_create)
        r("GET", "/v1/checkout/sessions")(self.checkout_list)
        r("GET", "/v1/checkout/sessions/(cs_[^/]+)")(self.checkout_retrieve)
        r("POST", "/v1/checkout/sessions/(cs_[^/]+)/expire")(self.checkout_expire)
        r("GET", "/v1/checkout/sessions/(cs_[^/]+)/line_items")(self.checkout_line_items)
        r("POST", "/v1/billing_portal/sessions")(self.portal_create)
        r("POST", "/v1/billing_portal/configurations")(self.portal_config_create)
        r("GET", "/v1/billing_portal/configurations")(self.portal_config_list)
        r("GET", "/v1/billing_portal/configurations/(bpc_[^/]+)")(self.portal_config_retrieve)
        r("POST", "/v1/billing_portal/configurations/(bpc_[^/]+)")(self.portal_config_update)
        r("POST", "/v1/billing/meters")(self.meter_create)
        r("GET", "/v1/billing/meters")(self.meter_list)
        r("GET", "/v1/billing/meters/(mtr_[^/]+)")(self.meter_retrieve)
        r("POST", "/v1/billing/meters/(mtr_[^/]+)")(self.meter_update)
        r("POST", "/v1/billing/meters/(mtr_[^/]+)/deactivate")(self.meter_deactivate)
        r("POST", "/v1/billing/meters/(mtr_[^/]+)/reactivate")(self.meter_reactivate)
        r("GET", "/v1/billing/meters/(mtr_[^/]+)/event_summaries")(self.meter_summaries)
        r("POST", "/v1/billing/meter_events")(self.meter_event_create)
        r("POST", "/v2/billing/meter_events")(self.meter_event_create_v2)
        r("POST", "/v2/billing/meter_event_session")(self.meter_event_session)
        r("POST", "/v2/billing/meter_event_stream")(self.meter_event_stream)
        r("POST", "/v2/billing/meter_event_adjustments")(self.meter_event_adjustment_v2)
        r("POST", "/v1/billing/meter_event_adjustments")(self.meter_event_adjustment)
        r("GET", "/v1/events")(self.event_list)
        r("GET", "/v1/events/(evt_[^/]+)")(self.event_retrieve)
        r("POST", "/v1/webhook_endpoints")(self.webhook_create)
        r("GET", "/v1/webhook_endpoints")(self.webhook_list)
        r("GET", "/v1/webhook_endpoints/(we_[^/]+)")(self.webhook_retrieve)
        r("POST", "/v1/webhook_endpoints/(we_[^/]+)")(self.webhook_update)
        r("DELETE", "/v1/webhook_endpoints/(we_[^/]+)")(self.webhook_delete)
        r("POST", "/v1/test_helpers/test_clocks")(self.clock_create)
        r("GET", "/v1/test_helpers/test_clocks")(self.clock_list)
        r("GET", "/v1/test_helpers/test_clocks/(clock_[^/]+)")(self.clock_retrieve)
        r("DELETE", "/v1/test_helpers/test_clocks/(clock_[^/]+)")(self.clock_delete)
        r("POST", "/v1/test_helpers/test_clocks/(clock_[^/]+)/advance")(self.clock_advance)

    # --- search -------------------------------------------------------------------------
    _CLAUSE = re.compile(
        r"""(-)?(metadata\[['"](.+?)['"]\]|[a-z_.]+)\s*(:|~|>=|<=|>|<)\s*(?:'([^']*)'|"([^"]*)"|(\S+))"""
    )

    def _search(self, kind: str, params: Obj, url: str) -> Obj:
        """Stripe's search query language, the common part: ``field:'v'``, ``metadata['k']:'v'``,
        ``~`` (substring), ``>``/``<`` on numbers, ``-`` to negate, joined by AND or OR."""
        query = str(params.get("query") or "")
        if not query:
            raise invalid("Missing required param: query.", param="query")
        joiner = " OR " if " OR " in query else " AND "
        clauses = []
        for part in query.split(joiner):
            match = self._CLAUSE.fullmatch(part.strip())
            if not match:
                raise invalid(f"Invalid search query: {query}", param="query")
            negate, field, meta_key, op, v1, v2, v3 = match.groups()
            clauses.append(
                (bool(negate), field, meta_key, op, v1 if v1 is not None else v2 if v2 is not None else v3)
            )

        def value_of(obj: Obj, field: str, meta_key: str | None) -> Any:
            if meta_key is not None:
                return (obj.get("metadata") or {}).get(meta_key)
            value: Any = obj
            for part in field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return value

        def holds(obj: Obj, clause: tuple[bool, str, str | None, str, str]) -> bool:
            negate, field, meta_key, op, expected = clause
            actual = value_of(obj, field, meta_key)
            if op == ":":
                result = actual is not None and str(actual).lower() == expected.lower()
                if expected == "null":
                    result = actual is None
            elif op == "~":
                result = actual is not None and expected.lower() in str(actual).lower()
            else:
                try:
                    number, bound = float(actual), float(expected)
                except (TypeError, ValueError):
                    return False
                result = {
                    ">": number > bound,
                    "<": number < bound,
                    ">=": number >= bound,
                    "<=": number <= bound,
                }[op]
            return result != negate

        combine = any if joiner == " OR " else all
        objs = [o for o in self._all(kind) if combine(holds(o, c) for c in clauses)]
        objs.sort(key=lambda o: o.get("_seq", 0), reverse=True)
        limit = max(1, min(100, _int(params.get("limit", 10), "limit")))
        result: Obj = {
            "object": "search_result",
            "data": [self._public(o) for o in objs[:limit]],
            "has_more": len(objs) > limit,
            "next_page": None,
            "url": url,
        }
        for path in _as_list(params.get("expand")):
            self._expand(result | {"object": "list"}, str(path).split("."))
        return result

    def _customer_sub_list(self, params: Obj, customer_id: str, name: str) -> Obj:
        self._get("customer", customer_id)
        return self._list([], params, f"/v1/customers/{customer_id}/{name}")

    def plan_list(self, params: Obj) -> Obj:
        """Plans are the legacy view of recurring prices; Stripe still lists them."""
        prices = [p for p in self._all("price") if p["type"] == "recurring"]
        if "active" in params:
            prices = [p for p in prices if p["active"] == _bool(params["active"])]
        if params.get("product"):
            prices = [p for p in prices if p["product"] == params["product"]]
        result = self._list(prices, params, "/v1/plans")
        result["data"] = [self._plan_for(self.objects[p["id"]]) for p in result["data"]]
        return result

    def plan_retrieve(self, params: Obj, plan_id: str) -> Obj:
        price = self.objects.get(plan_id)
        if price is None or price.get("object") != "price" or price["type"] != "recurring":
            raise missing("plan", plan_id)
        return self.render(self._plan_for(price) | {"_seq": 0}, params.get("expand"))

    # --- coupons, promotion codes, discounts ---------------------------------------------
    def _coupon(self, coupon_id: Any, *, param: str = "coupon") -> Obj:
        coupon = self.objects.get(str(coupon_id)) if coupon_id else None
        if coupon is None or coupon.get("object") != "coupon" or coupon.get("_deleted"):
            raise missing("coupon", str(coupon_id), param=param)
        return coupon

    def coupon_create(self, params: Obj) -> Obj:
        percent = params.get("percent_off")
        amount = params.get("amount_off")
        if (percent in (None, "")) == (amount in (None, "")):
            raise invalid("You must pass either `percent_off` or `amount_off`.", param="percent_off")
        duration = params.get("duration", "once")
        if duration not in ("once", "repeating", "forever"):
            raise invalid("Invalid duration.", param="duration")
        if duration == "repeating" and not params.get("duration_in_months"):
            raise invalid("Missing required param: duration_in_months.", param="duration_in_months")
        if amount not in (None, "") and not params.get("currency"):
            raise invalid("Missing required param: currency.", param="currency")
        coupon_id = params.get("id") or new_id("", 8)
        if coupon_id in self.objects:
            raise invalid("Coupon already exists.", param="id", code="resource_already_exists")
        coupon = example("coupon")
        percent_value = float(percent) if percent not in (None, "") else None
        coupon.update(
            id=coupon_id,
            amount_off=_int(amount, "amount_off") if amount not in (None, "") else None,
            created=self.now(),
            currency=str(params["currency"]).lower() if params.get("currency") else None,
            duration=duration,
            duration_in_months=_int(params["duration_in_months"], "duration_in_months")
            if duration == "repeating"
            else None,
            livemode=False,
            max_redemptions=_int(params["max_redemptions"], "max_redemptions")
            if params.get("max_redemptions")
            else None,
            metadata={},
            name=params.get("name") or None,
            percent_off=percent_value,
            redeem_by=_int(params["redeem_by"], "redeem_by") if params.get("redeem_by") else None,
            times_redeemed=0,
            valid=True,
        )
        self._merge_metadata(coupon, params)
        self._store(coupon)
        self._emit("coupon.created", coupon)
        return self.render(coupon, params.get("expand"))

    def coupon_list(self, params: Obj) -> Obj:
        return self._list(self._all("coupon"), params, "/v1/coupons")

    def coupon_retrieve(self, params: Obj, coupon_id: str) -> Obj:
        return self.render(self._coupon(coupon_id, param="id"), params.get("expand"))

    def coupon_update(self, params: Obj, coupon_id: str) -> Obj:
        coupon = self._coupon(coupon_id, param="id")
        before = self._public(coupon)
        if "name" in params:
            coupon["name"] = params["name"] or None
        self._merge_metadata(coupon, params)
        self._updated(coupon, before, "coupon.updated")
        return self.render(coupon, params.get("expand"))

    def coupon_delete(self, params: Obj, coupon_id: str) -> Obj:
        coupon = self._coupon(coupon_id, param="id")
        coupon["_deleted"] = True
        self._emit("coupon.deleted", coupon)
        deleted = example("deleted_coupon")
        deleted["id"] = coupon_id
        return deleted

    def promo_create(self, params: Obj) -> Obj:
        promotion = params.get("promotion") or {}
        coupon = self._coupon(
            promotion.get("coupon") if isinstance(promotion, dict) else None, param="promotion[coupon]"
        )
        code = str(params.get("code") or new_id("", 8).upper())
        if any(p["code"].lower() == code.lower() and p["active"] for p in self._all("promotion_code")):
            raise invalid(f"An active promotion code with `code: {code}` already exists.", param="code")
        promo = example("promotion_code")
        promo.update(
            id=new_id("promo_"),
            active=_bool(params.get("active", "true")),
            code=code,
            created=self.now(),
            customer=params.get("customer") or None,
            expires_at=_int(params["expires_at"], "expires_at") if params.get("expires_at") else None,
            livemode=False,
            max_redemptions=_int(params["max_redemptions"], "max_redemptions")
            if params.get("max_redemptions")
            else None,
            metadata={},
            promotion={"coupon": coupon["id"], "type": "coupon"},
            times_redeemed=0,
        )
        self._merge_metadata(promo, params)
        self._store(promo)
        self._emit("promotion_code.created", promo)
        return self.render(promo, params.get("expand"))

    def promo_list(self, params: Obj) -> Obj:
        objs = self._all("promotion_code")
        if params.get("code"):
            objs = [p for p in objs if p["code"].lower() == str(params["code"]).lower()]
        if "active" in params:
            objs = [p for p in objs if p["active"] == _bool(params["active"])]
        if params.get("coupon"):
            objs = [p for p in objs if p["promotion"]["coupon"] == params["coupon"]]
        return self._list(objs, params, "/v1/promotion_codes")

    def promo_retrieve(self, params: Obj, promo_id: str) -> Obj:
        return self.render(self._get("promotion_code", promo_id), params.get("expand"))

    def promo_update(self, params: Obj, promo_id: str) -> Obj:
        promo = self._get("promotion_code", promo_id)
        before = self._public(promo)
        if "active" in params:
            promo["active"] = _bool(params["active"])
        self._merge_metadata(promo, params)
        self._updated(promo, before, "promotion_code.updated")
        return self.render(promo, params.get("expand"))

    def promotion_code_by_code(self, code: str) -> Obj | None:
        for promo in self._all("promotion_code"):
            if promo["code"].lower() == code.lower() and promo["active"]:
                return promo
        return None

    def _new_discount(self, spec: Obj, sub: Obj, at: int, *, param: str) -> Obj:
        """A ``discount`` on a subscription from ``{coupon}`` or ``{promotion_code}``."""
        promo = None
        if spec.get("promotion_code"):
            promo = self._get("promotion_code", spec["promotion_code"], param=f"{param}[promotion_code]")
            if not promo["active"] or (promo["expires_at"] and promo["expires_at"] <= at):
                raise invalid("This promotion code is not active.", param=f"{param}[promotion_code]")
            if promo["max_redemptions"] and promo["times_redeemed"] >= promo["max_redemptions"]:
                raise invalid(
                    "This promotion code has been fully redeemed.", param=f"{param}[promotion_code]"
                )
            coupon = self._coupon(promo["promotion"]["coupon"])
        else:
            coupon = self._coupon(spec.get("coupon"), param=f"{param}[coupon]")
        if not coupon["valid"] or (coupon["redeem_by"] and coupon["redeem_by"] <= at):
            raise invalid(f"Coupon expired: {coupon['id']}", param=f"{param}[coupon]")
        if coupon["max_redemptions"] and coupon["times_redeemed"] >= coupon["max_redemptions"]:
            raise invalid(f"Coupon expired: {coupon['id']}", param=f"{param}[coupon]")
        coupon["times_redeemed"] += 1
        if promo is not None:
            promo["times_redeemed"] += 1
        discount = example("discount")
        end = None
        if coupon["duration"] == "repeating":
            end = add_interval(at, "month", int(coupon["duration_in_months"]))
        discount.update(
            id=new_id("di_"),
            checkout_session=None,
            customer=sub["customer"],
            end=end,
            invoice=None,
            invoice_item=None,
            promotion_code=promo["id"] if promo else None,
            start=at,
            subscription=sub["id"],
            subscription_item=None,
            source={"coupon": coupon["id"], "type": "coupon"},
            customer_account=None,
            _uses=0,
        )
        self._store(discount)
        self._emit("customer.discount.created", discount, at=at)
        return discount

    def _set_discounts(self, sub: Obj, specs: Any, at: int) -> None:
        if specs in ("", None):
            sub["discounts"] = []
            return
        ids = []
        for n, spec in enumerate(_as_list(specs)):
            if isinstance(spec, dict) and spec.get("discount"):
                ids.append(self._get("discount", spec["discount"], param=f"discounts[{n}][discount]")["id"])
            elif isinstance(spec, dict):
                ids.append(self._new_discount(spec, sub, at, param=f"discounts[{n}]")["id"])
        sub["discounts"] = ids

    def _apply_discounts(self, invoice: Obj, sub: Obj | None, at: int, *, consume: bool) -> None:
        """The subscription's live discounts, taken off the invoice's positive lines."""
        if sub is None or not sub.get("discounts"):
            return
        lines = [line for line in invoice["lines"]["data"] if int(line["amount"]) > 0]
        base = sum(int(line["amount"]) for line in lines)
        totals = []
        for discount_id in sub["discounts"]:
            discount = self.objects.get(discount_id)
            if discount is None:
                continue
            coupon = self.objects[discount["source"]["coupon"]]
            if discount["end"] and int(discount["end"]) <= at:
                continue
            if coupon["duration"] == "once" and discount["_uses"] > 0:
                continue
            if base <= 0:
                break
            if coupon["percent_off"] is not None:
                off = int(
                    (Decimal(base) * Decimal(str(coupon["percent_off"])) / 100).quantize(
                        Decimal(1), rounding=ROUND_HALF_UP
                    )
                )
            else:
                off = min(int(coupon["amount_off"]), base)
            remaining = off
            for n, line in enumerate(lines):
                share = remaining if n == len(lines) - 1 else off * int(line["amount"]) // base
                share = min(share, remaining)
                remaining -= share
                line["discount_amounts"] = [
                    *line["discount_amounts"],
                    {"amount": share, "discount": discount_id},
                ]
                line["discounts"] = [*line["discounts"], discount_id]
            totals.append({"amount": off, "discount": discount_id})
            base -= off
            if consume:
                discount["_uses"] += 1
        if totals:
            off_total = sum(t["amount"] for t in totals)
            total = int(invoice["subtotal"]) - off_total
            invoice.update(
                discounts=[t["discount"] for t in totals],
                total_discount_amounts=totals,
                total=total,
                total_excluding_tax=total,
                amount_due=max(total, 0),
                amount_remaining=max(total, 0),
            )

    # --- account ------------------------------------------------------------------------
    def account(self, params: Obj) -> Obj:
        account = example("account")
        account.update(
            id="acct_1LocalStripe00000",
            charges_enabled=True,
            payouts_enabled=True,
            details_submitted=True,
            email="billing@leanvibe.test",
        )
        account["business_profile"]["name"] = "LeanVibe (local Stripe)"
        account["settings"]["dashboard"]["display_name"] = "LeanVibe"
        account["requirements"].update(currently_due=[], eventually_due=[], disabled_reason=None)
        return account

    # --- customers ----------------------------------------------------------------------
    def customer_create(self, params: Obj) -> Obj:
        clock_id = params.get("test_clock") or None
        if clock_id:
            self._get("test_helpers.test_clock", clock_id, param="test_clock")
        customer = example("customer")
        customer.update(
            id=new_id("cus_", 14),
            balance=_int(params.get("balance", 0), "balance"),
            currency=None,
            description=params.get("description") or None,
            discount=None,
            email=params.get("email") or None,
            invoice_prefix=new_id("", 8).upper(),
            livemode=False,
            metadata={},
            name=params.get("name") or None,
            phone=params.get("phone") or None,
            shipping=None,
            test_clock=clock_id,
            next_invoice_sequence=1,
        )
        customer["created"] = int(self.objects[clock_id]["frozen_time"]) if clock_id else self.now()
        self._store(customer)
        self._merge_metadata(customer, params)
        self._emit("customer.created", customer)
        attached = None
        if params.get("payment_method"):
            attached = self._attach(params["payment_method"], customer, param="payment_method")
        settings = params.get("invoice_settings") or {}
        default_pm = settings.get("default_payment_method") if isinstance(settings, dict) else None
        if default_pm:
            if attached is not None and default_pm == params["payment_method"]:
                default_pm = attached["id"]  # ``pm_card_visa`` twice means the card just attached
            self._set_default_pm(customer, default_pm)
        return self.render(customer, params.get("expand"))

    def customer_list(self, params: Obj) -> Obj:
        objs = self._all("customer")
        if params.get("email"):
            objs = [c for c in objs if c["email"] == params["email"]]
        if params.get("test_clock"):
            objs = [c for c in objs if c["test_clock"] == params["test_clock"]]
        objs = self._created_filter(objs, params.get("created"))
        return self._list(objs, params, "/v1/customers")

    def customer_retrieve(self, params: Obj, customer_id: str) -> Obj:
        obj = self.objects.get(customer_id)
        if obj is not None and obj.get("_deleted"):
            return {"id": customer_id, "object": "customer", "deleted": True}
        return self.render(self._get("customer", customer_id), params.get("expand"))

    def _set_default_pm(self, customer: Obj, pm_id: str) -> None:
        if pm_id in ("", None):
            customer["invoice_settings"]["default_payment_method"] = None
            return
        pm = self._get("payment_method", pm_id, param="invoice_settings[default_payment_method]")
        if pm["customer"] != customer["id"]:
            raise invalid(
                f"The customer does not have a payment method with the ID {pm_id}. The payment method "
                "must be attached to the customer.",
                param="invoice_settings[default_payment_method]",
            )
        customer["invoice_settings"]["default_payment_method"] = pm_id

    def customer_update(self, params: Obj, customer_id: str) -> Obj:
        customer = self._get("customer", customer_id)
        before = self._public(customer)
        for field in ("email", "name", "description", "phone"):
            if field in params:
                customer[field] = params[field] or None
        if "balance" in params:
            customer["balance"] = _int(params["balance"], "balance")
        self._merge_metadata(customer, params)
        settings = params.get("invoice_settings") or {}
        if isinstance(settings, dict) and "default_payment_method" in settings:
            self._set_default_pm(customer, settings["default_payment_method"])
        self._updated(customer, before, "customer.updated")
        return self.render(customer, params.get("expand"))

    def customer_delete(self, params: Obj, customer_id: str) -> Obj:
        customer = self._get("customer", customer_id)
        for sub in self._all("subscription"):
            if sub["customer"] == customer_id and sub["status"] not in ("canceled", "incomplete_expired"):
                self._cancel_subscription(sub, at=self.now(customer_id))
        customer["_deleted"] = True
        self._emit("customer.deleted", customer)
        deleted = example("deleted_customer")
        deleted["id"] = customer_id
        return deleted

    def customer_payment_methods(self, params: Obj, customer_id: str) -> Obj:
        self._get("customer", customer_id)
        objs = [p for p in self._all("payment_method") if p["customer"] == customer_id]
        return self._list(objs, params, f"/v1/customers/{customer_id}/payment_methods")

    # --- payment methods ----------------------------------------------------------------
    def _new_pm(self, test_pm: str, *, customer_id: str | None = None, params: Obj | None = None) -> Obj:
        brand, last4, behaviour = TEST_PAYMENT_METHODS[test_pm]
        pm = example("payment_method")
        pm.update(
            id=new_id("pm_"),
            allow_redisplay="unspecified",
            created=self.now(customer_id),
            customer=None,
            livemode=False,
            metadata={},
            type="card",
            _behaviour=behaviour,
        )
        pm["billing_details"] = {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        }
        details = (params or {}).get("billing_details") or {}
        if isinstance(details, dict):
            for key in ("email", "name", "phone"):
                if details.get(key):
                    pm["billing_details"][key] = details[key]
        card = pm["card"]
        card.update(
            brand=brand,
            display_brand=brand,
            last4=last4,
            exp_month=12,
            exp_year=time.gmtime().tm_year + 3,
            fingerprint=hashlib.sha256(test_pm.encode()).hexdigest()[:16],
            generated_from=None,
            wallet=None,
        )
        card["networks"] = {"available": [brand], "preferred": None}
        self._merge_metadata(pm, params or {})
        return self._store(pm)

    @staticmethod
    def _test_pm_for(value: str, *, param: str) -> str:
        if value in TEST_PAYMENT_METHODS:
            return value
        if value in TEST_TOKENS:
            return TEST_TOKENS[value]
        digits = value.replace(" ", "")
        if digits in TEST_CARD_NUMBERS:
            return TEST_CARD_NUMBERS[digits]
        if digits.isdigit():
            raise ApiError(
                402,
                "Your card number is incorrect.",
                type="card_error",
                code="incorrect_number",
                param="card[number]",
            )
        raise missing("token", value, param=param)

    def pm_create(self, params: Obj) -> Obj:
        if params.get("type", "card") != "card":
            raise invalid("Only card payment methods are supported by the local Stripe.", param="type")
        card = params.get("card") or {}
        if params.get("payment_method"):
            test_pm = self._test_pm_for(params["payment_method"], param="payment_method")
        elif isinstance(card, dict) and card.get("token"):
            test_pm = self._test_pm_for(card["token"], param="card[token]")
        elif isinstance(card, dict) and card.get("number"):
            test_pm = self._test_pm_for(str(card["number"]), param="card[number]")
        else:
            raise invalid("Missing required param: card.", param="card")
        pm = self._new_pm(test_pm, params=params)
        return self.render(pm, params.get("expand"))

    def _resolve_pm(self, pm_id: str, *, param: str) -> Obj:
        if pm_id in TEST_PAYMENT_METHODS:
            return self._new_pm(pm_id)
        return self._get("payment_method", pm_id, param=param)

    def _attach(self, pm_id: str, customer: Obj, *, param: str = "payment_method") -> Obj:
        pm = self._resolve_pm(pm_id, param=param)
        if pm.get("_behaviour") in ("decline", "insufficient_funds"):
            decline = "insufficient_funds" if pm["_behaviour"] == "insufficient_funds" else "generic_decline"
            raise card_declined(decline_code=decline)
        if pm["customer"] and pm["customer"] != customer["id"]:
            raise invalid(
                "The payment method you provided has already been attached to a customer.",
                param=param,
            )
        if pm["customer"] != customer["id"]:
            pm["customer"] = customer["id"]
            pm["created"] = self.now(customer["id"])
            self._emit("payment_method.attached", pm)
        return pm

    def pm_list(self, params: Obj) -> Obj:
        objs = self._all("payment_method")
        if params.get("customer"):
            self._get("customer", params["customer"], param="customer")
            objs = [p for p in objs if p["customer"] == params["customer"]]
        if params.get("type"):
            objs = [p for p in objs if p["type"] == params["type"]]
        return self._list(objs, params, "/v1/payment_methods")

    def pm_retrieve(self, params: Obj, pm_id: str) -> Obj:
        if pm_id in TEST_PAYMENT_METHODS:
            return self.render(self._new_pm(pm_id), params.get("expand"))
        return self.render(self._get("payment_method", pm_id), params.get("expand"))

    def pm_update(self, params: Obj, pm_id: str) -> Obj:
        pm = self._get("payment_method", pm_id)
        before = self._public(pm)
        self._merge_metadata(pm, params)
        self._updated(pm, before, "payment_method.updated")
        return self.render(pm, params.get("expand"))

    def pm_attach(self, params: Obj, pm_id: str) -> Obj:
        customer = self._get("customer", params.get("customer"), param="customer")
        pm = self._attach(pm_id, customer, param="payment_method")
        return self.render(pm, params.get("expand"))

    def pm_detach(self, params: Obj, pm_id: str) -> Obj:
        pm = self._get("payment_method", pm_id)
        if not pm["customer"]:
            raise invalid(
                "The payment method you provided is not attached to a customer so detachment is impossible.",
                param="payment_method",
            )
        customer = self.objects.get(pm["customer"])
        pm["customer"] = None
        if customer and customer["invoice_settings"]["default_payment_method"] == pm_id:
            before = self._public(customer)
            customer["invoice_settings"]["default_payment_method"] = None
            self._updated(customer, before, "customer.updated")
        for sub in self._all("subscription"):
            if sub["default_payment_method"] == pm_id:
                sub["default_payment_method"] = None
        self._emit("payment_method.detached", pm, previous={"customer": customer["id"] if customer else None})
        return self.render(pm, params.get("expand"))

    # --- products -----------------------------------------------------------------------
    def product_create(self, params: Obj) -> Obj:
        if not params.get("name"):
            raise invalid("Missing required param: name.", param="name")
        product_id = params.get("id") or new_id("prod_", 14)
        if product_id in self.objects:
            raise invalid("Product already exists.", param="id", code="resource_already_exists")
        product = example("product")
        now = self.now()
        product.update(
            id=product_id,
            active=_bool(params.get("active", "true")),
            created=now,
            updated=now,
            default_price=None,
            description=params.get("description") or None,
            images=[],
            livemode=False,
            marketing_features=[],
            metadata={},
            name=params["name"],
            package_dimensions=None,
            shippable=None,
            statement_descriptor=None,
            tax_code=params.get("tax_code") or None,
            unit_label=params.get("unit_label") or None,
            url=None,
            type="service",
        )
        self._merge_metadata(product, params)
        self._store(product)
        self._emit("product.created", product)
        if isinstance(params.get("default_price_data"), dict):
            data = dict(params["default_price_data"]) | {"product": product_id}
            price = self._price_create(data)
            before = self._public(product)
            product["default_price"] = price["id"]
            self._updated(product, before, "product.updated")
        return self.render(product, params.get("expand"))

    def product_list(self, params: Obj) -> Obj:
        objs = self._all("product")
        if "active" in params:
            objs = [p for p in objs if p["active"] == _bool(params["active"])]
        if params.get("ids"):
            wanted = set(_as_list(params["ids"]))
            objs = [p for p in objs if p["id"] in wanted]
        return self._list(objs, params, "/v1/products")

    def product_retrieve(self, params: Obj, product_id: str) -> Obj:
        return self.render(self._get("product", product_id), params.get("expand"))

    def product_update(self, params: Obj, product_id: str) -> Obj:
        product = self._get("product", product_id)
        before = self._public(product)
        for field in ("name", "description", "unit_label"):
            if field in params:
                product[field] = params[field] or None
        if "active" in params:
            product["active"] = _bool(params["active"])
        if "default_price" in params:
            if params["default_price"]:
                self._get("price", params["default_price"], param="default_price")
            product["default_price"] = params["default_price"] or None
        self._merge_metadata(product, params)
        product["updated"] = self.now()
        self._updated(product, before, "product.updated")
        return self.render(product, params.get("expand"))

    def product_delete(self, params: Obj, product_id: str) -> Obj:
        product = self._get("product", product_id)
        if any(p["product"] == product_id for p in self._all("price")):
            raise invalid("This product cannot be deleted because it has one or more user-created prices.")
        product["_deleted"] = True
        self._emit("product.deleted", product)
        deleted = example("deleted_product")
        deleted["id"] = product_id
        return deleted

    # --- entitlement features, and their attachment to products --------------------------
    def feature_create(self, params: Obj) -> Obj:
        for required in ("name", "lookup_key"):
            if not params.get(required):
                raise invalid(f"Missing required param: {required}.", param=required)
        lookup_key = str(params["lookup_key"])
        if any(f["lookup_key"] == lookup_key for f in self._all("entitlements.feature")):
            raise invalid(
                f"A feature with lookup_key {lookup_key} already exists.",
                param="lookup_key",
                code="resource_already_exists",
            )
        feature = example("entitlements.feature")
        feature.update(
            id=new_id("feat_test_", 32),
            active=True,
            livemode=False,
            lookup_key=lookup_key,
            metadata={},
            name=str(params["name"]),
        )
        self._merge_metadata(feature, params)
        self._store(feature)
        return self.render(feature, params.get("expand"))

    def feature_list(self, params: Obj) -> Obj:
        objs = self._all("entitlements.feature")
        if "archived" in params:
            objs = [f for f in objs if f["active"] != _bool(params["archived"])]
        if params.get("lookup_key"):
            objs = [f for f in objs if f["lookup_key"] == params["lookup_key"]]
        return self._list(objs, params, "/v1/entitlements/features")

    def feature_retrieve(self, params: Obj, feature_id: str) -> Obj:
        return self.render(self._get("entitlements.feature", feature_id), params.get("expand"))

    def feature_update(self, params: Obj, feature_id: str) -> Obj:
        """``active=false`` archives a feature (Stripe never deletes one)."""
        feature = self._get("entitlements.feature", feature_id)
        if params.get("name"):
            feature["name"] = str(params["name"])
        if "active" in params:
            feature["active"] = _bool(params["active"])
        self._merge_metadata(feature, params)
        return self.render(feature, params.get("expand"))

    def _product_features(self, product_id: str) -> list[Obj]:
        return [pf for pf in self._all("product_feature") if pf["_product"] == product_id]

    def product_feature_create(self, params: Obj, product_id: str) -> Obj:
        """Attach a feature: a ``product_feature`` whose ``entitlement_feature`` is the whole
        feature (Stripe returns it in full, not as an id)."""
        self._get("product", product_id)
        feature_id = params.get("entitlement_feature")
        if not feature_id:
            raise invalid("Missing required param: entitlement_feature.", param="entitlement_feature")
        feature = self._get("entitlements.feature", feature_id, param="entitlement_feature")
        if not feature["active"]:
            raise invalid(
                f"Feature {feature_id} is archived and cannot be attached to a product.",
                param="entitlement_feature",
            )
        if any(pf["_feature"] == feature_id for pf in self._product_features(product_id)):
            raise invalid(
                f"Feature {feature_id} is already attached to product {product_id}.",
                param="entitlement_feature",
                code="resource_already_exists",
            )
        attached = example("product_feature")
        attached.update(id=new_id("prodft_", 24), livemode=False, _product=product_id, _feature=feature_id)
        attached.pop("entitlement_feature", None)  # rendered from the feature (``_public``)
        self._store(attached)
        return self.render(attached, params.get("expand"))

    def product_feature_list(self, params: Obj, product_id: str) -> Obj:
        self._get("product", product_id)
        return self._list(self._product_features(product_id), params, f"/v1/products/{product_id}/features")

    def _product_feature(self, product_id: str, product_feature_id: str) -> Obj:
        self._get("product", product_id)
        attached = self._get("product_feature", product_feature_id)
        if attached["_product"] != product_id:
            raise missing("product feature", product_feature_id)
        return attached

    def product_feature_retrieve(self, params: Obj, product_id: str, product_feature_id: str) -> Obj:
        return self.render(self._product_feature(product_id, product_feature_id), params.get("expand"))

    def product_feature_delete(self, params: Obj, product_id: str, product_feature_id: str) -> Obj:
        self._product_feature(product_id, product_feature_id)["_deleted"] = True
        deleted = example("deleted_product_feature")
        deleted["id"] = product_feature_id
        return deleted

    # --- prices -------------------------------------------------------------------------
    def _price_create(self, params: Obj) -> Obj:
        product_id = params.get("product")
        if not product_id and isinstance(params.get("product_data"), dict):
            created = self.product_create(dict(params["product_data"]))
            product_id = created["id"]
        self._get("product", product_id, param="product")
        currency = str(params.get("currency") or "").lower()
        if not currency:
            raise invalid("Missing required param: currency.", param="currency")
        billing_scheme = params.get("billing_scheme", "per_unit")
        tiers: list[Obj] | None = None
        decimal: str | None
        unit_amount: int | None
        if billing_scheme == "tiered":
            tiers = self._parse_tiers(params)
            decimal = unit_amount = None
        elif "unit_amount_decimal" in params and params["unit_amount_decimal"] != "":
            decimal = _decimal_str(params["unit_amount_decimal"], "unit_amount_decimal")
            unit_amount = int(Decimal(decimal)) if Decimal(decimal) == int(Decimal(decimal)) else None
        elif "unit_amount" in params:
            unit_amount = _int(params["unit_amount"], "unit_amount")
            decimal = str(unit_amount)
        else:
            raise invalid("Missing required param: unit_amount.", param="unit_amount")
        transform = params.get("transform_quantity")
        transform_quantity = None
        if isinstance(transform, dict):
            transform_quantity = {
                "divide_by": _int(transform.get("divide_by"), "transform_quantity[divide_by]"),
                "round": transform.get("round", "up"),
            }
            if transform_quantity["divide_by"] <= 0 or transform_quantity["round"] not in ("up", "down"):
                raise invalid("Invalid transform_quantity.", param="transform_quantity")
        recurring_params = params.get("recurring")
        recurring: Obj | None = None
        if isinstance(recurring_params, dict):
            interval = recurring_params.get("interval")
            if interval not in ("day", "week", "month", "year"):
                raise invalid("Invalid recurring[interval].", param="recurring[interval]")
            usage_type = recurring_params.get("usage_type", "licensed")
            meter = recurring_params.get("meter") or None
            if usage_type == "metered" and not meter:
                raise invalid(
                    "Metered prices require a meter. Pass `recurring[meter]`.", param="recurring[meter]"
                )
            if meter:
                self._get("billing.meter", meter, param="recurring[meter]")
            trial_days = recurring_params.get("trial_period_days")
            recurring = {
                "interval": interval,
                "interval_count": _int(recurring_params.get("interval_count", 1), "interval_count"),
                "meter": meter,
                "usage_type": usage_type,
                "trial_period_days": _int(trial_days, "trial_period_days") if trial_days else None,
            }
        lookup_key = params.get("lookup_key") or None
        if lookup_key:
            self._claim_lookup_key(lookup_key, _bool(params.get("transfer_lookup_key")), None)
        price = example("price")
        price.update(
            id=new_id("price_"),
            active=_bool(params.get("active", "true")),
            billing_scheme=billing_scheme,
            created=self.now(),
            currency=currency,
            custom_unit_amount=None,
            livemode=False,
            lookup_key=lookup_key,
            metadata={},
            nickname=params.get("nickname") or None,
            product=product_id,
            recurring=recurring,
            tax_behavior=params.get("tax_behavior", "unspecified"),
            tiers_mode=params.get("tiers_mode") if tiers else None,
            transform_quantity=transform_quantity,
            type="recurring" if recurring else "one_time",
            unit_amount=unit_amount,
            unit_amount_decimal=decimal,
            _tiers=tiers,
        )
        self._merge_metadata(price, params)
        self._store(price)
        self._emit("price.created", price)
        return price

    @staticmethod
    def _parse_tiers(params: Obj) -> list[Obj]:
        if params.get("tiers_mode") not in ("graduated", "volume"):
            raise invalid("Missing required param: tiers_mode.", param="tiers_mode")
        tiers = []
        for n, spec in enumerate(_as_list(params.get("tiers"))):
            up_to = spec.get("up_to")
            unit = spec.get("unit_amount_decimal", spec.get("unit_amount"))
            flat = spec.get("flat_amount_decimal", spec.get("flat_amount"))
            unit_dec = _decimal_str(unit, f"tiers[{n}][unit_amount]") if unit not in (None, "") else None
            flat_dec = _decimal_str(flat, f"tiers[{n}][flat_amount]") if flat not in (None, "") else None
            tiers.append(
                {
                    "flat_amount": int(Decimal(flat_dec))
                    if flat_dec and Decimal(flat_dec) % 1 == 0
                    else None,
                    "flat_amount_decimal": flat_dec,
                    "unit_amount": int(Decimal(unit_dec))
                    if unit_dec and Decimal(unit_dec) % 1 == 0
                    else None,
                    "unit_amount_decimal": unit_dec,
                    "up_to": None if up_to == "inf" else _int(up_to, f"tiers[{n}][up_to]"),
                }
            )
        if len(tiers) < 2 or tiers[-1]["up_to"] is not None:
            raise invalid("Tiered prices need at least two tiers, the last with `up_to=inf`.", param="tiers")
        return tiers

    def _claim_lookup_key(self, lookup_key: str, transfer: bool, owner: str | None) -> None:
        for other in self._all("price"):
            if other["lookup_key"] == lookup_key and other["id"] != owner:
                if not transfer:
                    raise invalid(
                        f"A price (`{other['id']}`) already uses that lookup key.",
                        param="lookup_key",
                    )
                before = self._public(other)
                other["lookup_key"] = None
                self._updated(other, before, "price.updated")

    def price_create(self, params: Obj) -> Obj:
        return self.render(self._price_create(params), params.get("expand"))

    def price_list(self, params: Obj) -> Obj:
        objs = self._all("price")
        if "active" in params:
            objs = [p for p in objs if p["active"] == _bool(params["active"])]
        if params.get("product"):
            objs = [p for p in objs if p["product"] == params["product"]]
        if params.get("currency"):
            objs = [p for p in objs if p["currency"] == params["currency"]]
        if params.get("type"):
            objs = [p for p in objs if p["type"] == params["type"]]
        if params.get("lookup_keys"):
            keys = set(_as_list(params["lookup_keys"]))
            objs = [p for p in objs if p["lookup_key"] in keys]
        recurring = params.get("recurring")
        if isinstance(recurring, dict):
            for key in ("interval", "usage_type", "meter"):
                if recurring.get(key):
                    objs = [p for p in objs if (p["recurring"] or {}).get(key) == recurring[key]]
        objs = self._created_filter(objs, params.get("created"))
        return self._list(objs, params, "/v1/prices")

    def price_retrieve(self, params: Obj, price_id: str) -> Obj:
        return self.render(self._get("price", price_id), params.get("expand"))

    def price_update(self, params: Obj, price_id: str) -> Obj:
        price = self._get("price", price_id)
        before = self._public(price)
        if "active" in params:
            price["active"] = _bool(params["active"])
        if "nickname" in params:
            price["nickname"] = params["nickname"] or None
        if "lookup_key" in params:
            key = params["lookup_key"] or None
            if key:
                self._claim_lookup_key(key, _bool(params.get("transfer_lookup_key")), price_id)
            price["lookup_key"] = key
        self._merge_metadata(price, params)
        self._updated(price, before, "price.updated")
        return self.render(price, params.get("expand"))

    # --- subscriptions: building --------------------------------------------------------
    def _price_amount(self, price: Obj, quantity: int | Decimal) -> int:
        """What ``quantity`` units cost in cents: per unit or tiered (graduated / volume), after
        ``transform_quantity``, rounded half up as Stripe rounds line amounts."""
        qty = Decimal(quantity)
        transform = price.get("transform_quantity")
        if transform:
            divided = qty / Decimal(transform["divide_by"])
            qty = divided.to_integral_value(
                rounding=ROUND_CEILING if transform["round"] == "up" else ROUND_FLOOR
            )
        tiers = price.get("_tiers")
        if tiers:
            amount = Decimal(0)
            if price["tiers_mode"] == "volume":
                tier = next(t for t in tiers if t["up_to"] is None or qty <= t["up_to"])
                amount = qty * Decimal(tier["unit_amount_decimal"] or 0) + Decimal(
                    tier["flat_amount_decimal"] or 0
                )
            else:
                lower = Decimal(0)
                for tier in tiers:
                    if qty <= lower:
                        break
                    upper = qty if tier["up_to"] is None else min(qty, Decimal(tier["up_to"]))
                    amount += (upper - lower) * Decimal(tier["unit_amount_decimal"] or 0)
                    amount += Decimal(tier["flat_amount_decimal"] or 0)
                    lower = upper
        else:
            amount = Decimal(price["unit_amount_decimal"]) * qty
        return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def _new_item(self, sub: Obj, spec: Obj, at: int) -> Obj:
        price = self._get("price", spec.get("price"), param="items[0][price]")
        if not price["active"]:
            raise invalid(f"The price specified is inactive: {price['id']}.", param="items[0][price]")
        if price["type"] != "recurring":
            raise invalid(
                "The price specified is set to `type=one_time` but this field only accepts prices "
                "with `type=recurring`.",
                param="items[0][price]",
            )
        if any(i["_price"] == price["id"] for i in sub["items"]["data"]):
            raise invalid(
                f"Cannot add multiple subscription items with the same price: {price['id']}",
                param="items",
            )
        metered = price["recurring"]["usage_type"] == "metered"
        item = example("subscription_item")
        item.update(
            id=new_id("si_", 14),
            created=at,
            discounts=[],
            metadata={},
            quantity=None if metered else _int(spec.get("quantity", 1), "quantity"),
            subscription=sub["id"],
            tax_rates=[],
            billing_thresholds=None,
            current_period_start=at,
            current_period_end=at,
            _price=price["id"],
        )
        item.pop("price", None)
        item.pop("plan", None)
        self._merge_metadata(item, spec)
        return item

    def _item_price(self, item: Obj) -> Obj:
        price: Obj = self.objects[item["_price"]]
        return price

    def _default_pm(self, sub: Obj) -> str | None:
        if sub.get("default_payment_method"):
            return str(sub["default_payment_method"])
        customer = self.objects.get(sub["customer"])
        if customer:
            pm = customer["invoice_settings"]["default_payment_method"]
            return str(pm) if pm else None
        return None

    def _set_periods(self, sub: Obj, start: int, end: int | None = None) -> None:
        for item in sub["items"]["data"]:
            recurring = self._item_price(item)["recurring"]
            item["current_period_start"] = start
            item["current_period_end"] = end or add_interval(
                start, recurring["interval"], recurring["interval_count"]
            )

    def subscription_create(self, params: Obj) -> Obj:
        customer = self._get("customer", params.get("customer"), param="customer")
        at = self.now(customer["id"])
        items = _as_list(params.get("items"))
        if not items:
            raise invalid("Missing required param: items.", param="items")
        sub = example("subscription")
        sub["id"] = new_id("sub_")
        sub["items"] = {
            "data": [],
            "has_more": False,
            "object": "list",
            "url": f"/v1/subscription_items?subscription={sub['id']}",
        }
        for index, spec in enumerate(items):
            try:
                sub["items"]["data"].append(self._new_item(sub, spec, at))
            except ApiError as exc:
                if exc.param:
                    exc.param = exc.param.replace("items[0]", f"items[{index}]")
                raise
        intervals = {
            (self._item_price(i)["recurring"]["interval"], self._item_price(i)["recurring"]["interval_count"])
            for i in sub["items"]["data"]
        }
        if len(intervals) > 1:
            raise invalid(
                "The price specified has an interval different from the other prices. All prices on a "
                "subscription must have the same `recurring.interval` and `recurring.interval_count`.",
                param="items",
            )
        currencies = {self._item_price(i)["currency"] for i in sub["items"]["data"]}
        if len(currencies) > 1:
            raise invalid("All prices on a subscription must have the same currency.", param="items")
        pm_id = params.get("default_payment_method") or None
        if pm_id:
            pm = self._get("payment_method", pm_id, param="default_payment_method")
            if pm["customer"] != customer["id"]:
                raise invalid(
                    f"The customer does not have a payment method with the ID {pm_id}. The payment "
                    "method must be attached to the customer.",
                    param="default_payment_method",
                )
        trial_end = self._trial_end(params, sub, at)
        end_behavior = "create_invoice"
        trial_settings = params.get("trial_settings")
        if isinstance(trial_settings, dict):
            end_behavior = (trial_settings.get("end_behavior") or {}).get(
                "missing_payment_method", end_behavior
            )
            if end_behavior not in ("pause", "cancel", "create_invoice"):
                raise invalid(
                    "Invalid trial_settings[end_behavior][missing_payment_method].",
                    param="trial_settings[end_behavior][missing_payment_method]",
                )
        sub.update(
            application=None,
            application_fee_percent=None,
            billing_cycle_anchor=trial_end or at,
            billing_cycle_anchor_config=None,
            cancel_at=None,
            canceled_at=None,
            cancel_at_period_end=False,
            collection_method=_choice(params, "collection_method", _COLLECTION, "charge_automatically"),
            created=at,
            currency=currencies.pop(),
            customer=customer["id"],
            days_until_due=_int(params["days_until_due"], "days_until_due")
            if params.get("days_until_due")
            else None,
            default_payment_method=pm_id,
            description=params.get("description") or None,
            ended_at=None,
            latest_invoice=None,
            livemode=False,
            metadata={},
            next_pending_invoice_item_invoice=None,
            pause_collection=None,
            pending_invoice_item_interval=None,
            pending_update=None,
            schedule=None,
            start_date=at,
            status="incomplete",
            test_clock=customer["test_clock"],
            transfer_data=None,
            trial_end=trial_end,
            trial_start=at if trial_end else None,
            trial_settings={"end_behavior": {"missing_payment_method": end_behavior}},
            billing_thresholds=None,
            billing_schedules=[],
            managed_payments=None,
            _trial_will_end_sent=False,
        )
        sub["billing_mode"] = {"type": "classic", "flexible": None}
        sub["automatic_tax"] = {"enabled": False, "liability": None, "disabled_reason": None}
        sub["invoice_settings"] = {
            "account_tax_ids": None,
            "issuer": {"type": "self"},
            "custom_fields": None,
            "description": None,
            "footer": None,
        }
        self._merge_metadata(sub, params)
        sub["discounts"] = []
        if params.get("discounts"):
            self._set_discounts(sub, params["discounts"], at)
        if _bool(params.get("cancel_at_period_end")):
            sub["cancel_at_period_end"] = True
        behaviour = _choice(params, "payment_behavior", _PAYMENT_BEHAVIOR, "allow_incomplete")
        if trial_end:
            self._set_periods(sub, at, trial_end)
            sub["status"] = "trialing"
        else:
            self._set_periods(sub, at)
            self._check_can_pay(sub, behaviour)
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = self._period_end(sub)
        self._store(sub)
        lines = self._licensed_lines(sub, trial=bool(trial_end))
        invoice = self._create_invoice(
            sub["customer"], sub, "subscription_create", lines, at, self._period_end(sub), at, emit=False
        )
        # Stripe's order: the subscription (already naming its first invoice), then the invoice.
        self._emit("customer.subscription.created", sub)
        self._emit("invoice.created", invoice, at=at)
        self._finalize(invoice, at)
        if trial_end:
            self._pay(invoice, at)
        elif behaviour == "default_incomplete" and invoice["amount_due"] > 0:
            pass
        elif self._pay(invoice, at, initial=True):
            self._set_status(sub, "active", at)
        if sub["status"] == "incomplete" and invoice["status"] == "paid":
            self._set_status(sub, "active", at)
        return self.render(sub, params.get("expand"))

    def _check_can_pay(self, sub: Obj, behaviour: str) -> None:
        """``payment_behavior=error_if_incomplete``: a failing first payment creates nothing (402)."""
        if behaviour != "error_if_incomplete":
            return
        amount = sum(line["amount"] for line in self._licensed_lines(sub, trial=False))
        if amount <= 0:
            return
        pm_id = self._default_pm(sub)
        pm = self.objects.get(pm_id) if pm_id else None
        if pm is None:
            raise invalid(
                "This customer has no attached payment source or default payment method. Please "
                "consider adding a default payment method.",
            )
        if pm.get("_behaviour") != "ok":
            raise card_declined()

    def _trial_end(self, params: Obj, sub: Obj, at: int) -> int | None:
        if params.get("trial_end") not in (None, ""):
            if params["trial_end"] == "now":
                return None
            trial_end = _int(params["trial_end"], "trial_end")
            if trial_end <= at:
                raise invalid(
                    "Invalid timestamp: must be an integer Unix timestamp in the future.", param="trial_end"
                )
            return trial_end
        days = params.get("trial_period_days")
        if days not in (None, ""):
            days_int = _int(days, "trial_period_days")
            return at + days_int * DAY if days_int > 0 else None
        if _bool(params.get("trial_from_plan")):
            for item in sub["items"]["data"]:
                plan_days = (self._item_price(item)["recurring"] or {}).get("trial_period_days")
                if plan_days:
                    return at + int(plan_days) * DAY
        return None

    def _period_end(self, sub: Obj) -> int:
        return min(int(i["current_period_end"]) for i in sub["items"]["data"])

    def _period_start(self, sub: Obj) -> int:
        return min(int(i["current_period_start"]) for i in sub["items"]["data"])

    def _set_status(self, sub: Obj, status: str, at: int) -> None:
        if sub["status"] == status:
            return
        before = self._public(sub)
        sub["status"] = status
        self._updated(sub, before, "customer.subscription.updated", at=at)

    # --- invoices -----------------------------------------------------------------------
    def _line(
        self,
        *,
        amount: int,
        currency: str,
        description: str,
        period: tuple[int, int],
        price: Obj | None,
        quantity: int | None,
        sub: Obj | None,
        item: Obj | None = None,
        invoice_item: Obj | None = None,
        proration: bool = False,
    ) -> Obj:
        line = example("line_item")
        line.update(
            id=new_id("il_"),
            amount=amount,
            currency=currency,
            description=description,
            discount_amounts=[],
            discountable=True,
            discounts=[],
            invoice=None,
            livemode=False,
            metadata={},
            period={"start": period[0], "end": period[1]},
            quantity=quantity,
            subscription=sub["id"] if sub else None,
            pretax_credit_amounts=[],
            taxes=[],
            subtotal=amount,
            quantity_decimal=str(quantity) if quantity is not None else None,
        )
        if invoice_item is not None:
            line["parent"] = {
                "invoice_item_details": {
                    "invoice_item": invoice_item["id"],
                    "proration": proration,
                    "proration_details": {"credited_items": None},
                    "subscription": sub["id"] if sub else None,
                },
                "subscription_item_details": None,
                "type": "invoice_item_details",
            }
        else:
            line["parent"] = {
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": proration,
                    "proration_details": {"credited_items": None},
                    "subscription": sub["id"] if sub else None,
                    "subscription_item": item["id"] if item else None,
                },
                "type": "subscription_item_details",
            }
        line["pricing"] = {
            "type": "price_details",
            "price_details": {"price": price["id"], "product": price["product"]} if price else None,
            "unit_amount_decimal": price["unit_amount_decimal"] if price else str(amount),
        }
        return line

    def _licensed_lines(self, sub: Obj, *, trial: bool = False) -> list[Obj]:
        lines = []
        for item in sub["items"]["data"]:
            price = self._item_price(item)
            if price["recurring"]["usage_type"] == "metered":
                continue
            quantity = int(item["quantity"] or 1)
            product = self.objects.get(price["product"], {})
            name = product.get("name", "Product")
            description = (
                f"Trial period for {name}" if trial else f"{quantity} × {name} (at {self._money(price)})"  # noqa: RUF001 - the sign Stripe writes
            )
            lines.append(
                self._line(
                    amount=0 if trial else self._price_amount(price, quantity),
                    currency=price["currency"],
                    description=description,
                    period=(int(item["current_period_start"]), int(item["current_period_end"])),
                    price=price,
                    quantity=quantity,
                    sub=sub,
                    item=item,
                )
            )
        return lines

    @staticmethod
    def _money(price: Obj) -> str:
        if price["unit_amount_decimal"] is None:
            return "tiered"
        amount = Decimal(price["unit_amount_decimal"]) / 100
        interval = (price.get("recurring") or {}).get("interval")
        text = f"{price['currency'].upper()} {amount:.2f}"
        return f"{text} / {interval}" if interval else text

    def _usage(self, customer_id: str, meter_id: str, start: int, end: int) -> Decimal:
        meter = self.objects.get(meter_id)
        if meter is None:
            return Decimal(0)
        events = [
            e
            for e in self.state["meter_events"]
            if e["event_name"] == meter["event_name"]
            and e["customer"] == customer_id
            and start <= int(e["timestamp"]) < end
        ]
        formula = meter["default_aggregation"]["formula"]
        if formula == "count":
            return Decimal(len(events))
        if formula == "last":
            if not events:
                return Decimal(0)
            latest = max(events, key=lambda e: (int(e["timestamp"]), float(e["received"])))
            return Decimal(str(latest["value"]))
        return sum((Decimal(str(e["value"])) for e in events), Decimal(0))

    def _metered_lines(self, sub: Obj, start: int | None = None, end: int | None = None) -> list[Obj]:
        lines = []
        for item in sub["items"]["data"]:
            price = self._item_price(item)
            recurring = price["recurring"]
            if recurring["usage_type"] != "metered" or not recurring.get("meter"):
                continue
            period = (
                start if start is not None else int(item["current_period_start"]),
                end if end is not None else int(item["current_period_end"]),
            )
            usage = self._usage(sub["customer"], recurring["meter"], period[0], period[1])
            quantity = int(usage) if usage == int(usage) else None
            product = self.objects.get(price["product"], {})
            line = self._line(
                amount=self._price_amount(price, usage),
                currency=price["currency"],
                description=f"{product.get('name', 'Usage')} (usage: {usage})",
                period=period,
                price=price,
                quantity=quantity,
                sub=sub,
                item=item,
            )
            line["quantity_decimal"] = str(usage)
            lines.append(line)
        return lines

    def _pending_item_lines(self, customer_id: str, sub: Obj | None, *, claim: Obj | None) -> list[Obj]:
        lines = []
        for ii in sorted(self._all("invoiceitem"), key=lambda o: o["_seq"]):
            if ii["customer"] != customer_id or ii["invoice"] is not None:
                continue
            ii_sub = (ii.get("parent") or {}).get("subscription_details") or {}
            if sub is not None and ii_sub.get("subscription") not in (None, sub["id"]):
                continue
            price = self.objects.get(ii["_price"]) if ii.get("_price") else None
            lines.append(
                self._line(
                    amount=ii["amount"],
                    currency=ii["currency"],
                    description=ii["description"] or "Invoice item",
                    period=(ii["period"]["start"], ii["period"]["end"]),
                    price=price,
                    quantity=ii["quantity"],
                    sub=sub,
                    invoice_item=ii,
                    proration=ii["proration"],
                )
            )
            if claim is not None:
                before = self._public(ii)
                ii["invoice"] = claim["id"]
                self._updated(ii, before, "invoiceitem.updated")
        return lines

    def _invoice_object(
        self, customer_id: str, sub: Obj | None, reason: str, lines: list[Obj], start: int, end: int, at: int
    ) -> Obj:
        customer = self.objects[customer_id]
        invoice = example("invoice")
        invoice_id = new_id("in_")
        total = sum(int(line["amount"]) for line in lines)
        for line in lines:
            line["invoice"] = invoice_id
        currency = lines[0]["currency"] if lines else (sub["currency"] if sub else "usd")
        invoice.update(
            id=invoice_id,
            account_name="LeanVibe (local Stripe)",
            amount_due=max(total, 0),
            amount_paid=0,
            amount_remaining=max(total, 0),
            amount_overpaid=0,
            attempt_count=0,
            attempted=False,
            auto_advance=True,
            billing_reason=reason,
            collection_method=(sub or {}).get("collection_method", "charge_automatically"),
            created=at,
            currency=currency,
            customer=customer_id,
            customer_email=customer["email"],
            customer_name=customer["name"],
            customer_phone=customer["phone"],
            customer_shipping=None,
            default_payment_method=None,
            discounts=[],
            due_date=None,
            effective_at=None,
            ending_balance=None,
            from_invoice=None,
            hosted_invoice_url=None,
            invoice_pdf=None,
            last_finalization_error=None,
            livemode=False,
            metadata={},
            next_payment_attempt=None,
            number=None,
            period_start=start,
            period_end=end,
            shipping_cost=None,
            shipping_details=None,
            status="draft",
            subscription=None,
            subtotal=total,
            subtotal_excluding_tax=total,
            test_clock=customer["test_clock"],
            total=total,
            total_excluding_tax=total,
            total_pretax_credit_amounts=[],
            total_taxes=[],
            webhooks_delivered_at=None,
            automatically_finalizes_at=None,
            starting_balance=0,
            _failures=0,
            _first_failed_at=None,
        )
        invoice["automatic_tax"] = {
            "enabled": False,
            "liability": None,
            "status": None,
            "disabled_reason": None,
            "provider": None,
        }
        invoice["status_transitions"] = {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        }
        invoice["lines"] = {
            "data": lines,
            "has_more": False,
            "object": "list",
            "url": f"/v1/invoices/{invoice_id}/lines",
        }
        invoice["parent"] = (
            {
                "quote_details": None,
                "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]},
                "type": "subscription_details",
            }
            if sub
            else None
        )
        return invoice

    def _create_invoice(
        self,
        customer_id: str,
        sub: Obj | None,
        reason: str,
        lines: list[Obj],
        start: int,
        end: int,
        at: int,
        *,
        include_pending: bool = True,
        emit: bool = True,
    ) -> Obj:
        invoice = self._invoice_object(customer_id, sub, reason, [], start, end, at)
        if include_pending:
            lines = lines + self._pending_item_lines(customer_id, sub, claim=invoice)
        fresh = self._invoice_object(customer_id, sub, reason, lines, start, end, at)
        fresh["id"] = invoice["id"]
        fresh["lines"]["url"] = f"/v1/invoices/{invoice['id']}/lines"
        for line in lines:
            line["invoice"] = invoice["id"]
        self._apply_discounts(fresh, sub, at, consume=True)
        self._store(fresh)
        if sub is not None:
            sub["latest_invoice"] = fresh["id"]
        if emit:
            self._emit("invoice.created", fresh, at=at)
        return fresh

    def _finalize(self, invoice: Obj, at: int) -> None:
        if invoice["status"] != "draft":
            return
        customer = self.objects[invoice["customer"]]
        sequence = int(customer["next_invoice_sequence"])
        customer["next_invoice_sequence"] = sequence + 1
        self._apply_balance(invoice, customer, at)
        invoice.update(
            status="open",
            number=f"{customer['invoice_prefix']}-{sequence:04d}",
            effective_at=at,
            hosted_invoice_url=f"{self.base_url}/invoice/{invoice['id']}",
            invoice_pdf=f"{self.base_url}/invoice/{invoice['id']}/pdf",
            auto_advance=invoice["amount_due"] > 0,
        )
        invoice["status_transitions"]["finalized_at"] = at
        if invoice["collection_method"] == "send_invoice":
            sub = self._invoice_sub(invoice)
            days = int((sub or {}).get("days_until_due") or 30)
            invoice["due_date"] = at + days * DAY
        self._emit("invoice.finalized", invoice, at=at)

    @staticmethod
    def _balance_amounts(total: int, balance: int) -> tuple[int, int]:
        """(amount due, customer balance after) for an invoice of ``total`` and a customer
        ``balance`` (negative: credit owed to the customer), as Stripe applies it."""
        if total < 0:
            return 0, balance + total
        if balance < 0:
            return max(total + balance, 0), min(total + balance, 0)
        return total, balance

    def _apply_balance(self, invoice: Obj, customer: Obj, at: int) -> None:
        """At finalization a credit balance pays (part of) the invoice; a negative invoice
        becomes credit (e.g. a downgrade invoiced at once)."""
        balance = int(customer["balance"])
        due, after = self._balance_amounts(int(invoice["total"]), balance)
        invoice.update(
            starting_balance=balance,
            ending_balance=after,
            amount_due=due,
            amount_remaining=due - int(invoice["amount_paid"]),
        )
        if after != balance:
            before = self._public(customer)
            customer["balance"] = after
            self._updated(customer, before, "customer.updated", at=at)

    def _invoice_sub(self, invoice: Obj) -> Obj | None:
        parent = invoice.get("parent") or {}
        details = parent.get("subscription_details") or {}
        sub_id = details.get("subscription")
        return self.objects.get(sub_id) if sub_id else None

    def _charge(self, pm_id: str | None) -> tuple[bool, str]:
        """Whether a charge with this payment method succeeds, and the decline code if not."""
        pm = self.objects.get(pm_id) if pm_id else None
        if pm is None:
            return False, "no_payment_method"
        behaviour = pm.get("_behaviour", "ok")
        if behaviour == "ok":
            return True, ""
        return False, "insufficient_funds" if behaviour == "insufficient_funds" else "generic_decline"

    def _pay(
        self,
        invoice: Obj,
        at: int,
        *,
        pm_id: str | None = None,
        initial: bool = False,
        manual: bool = False,
    ) -> bool:
        """Charge an open invoice; on failure schedule Stripe's automatic retries.

        An invoice sent for payment (``collection_method=send_invoice``) is not charged
        automatically: it is "sent" (``invoice.sent``) and waits for its due date.
        """
        if invoice["status"] == "paid":
            return True
        if invoice["status"] != "open":
            raise invalid(f"Invoice is {invoice['status']} and cannot be paid.", param="invoice")
        if invoice["collection_method"] == "send_invoice" and invoice["amount_due"] > 0 and not manual:
            if not invoice.get("_sent"):
                invoice["_sent"] = True
                self._emit("invoice.sent", invoice, at=at)
            return True
        sub = self._invoice_sub(invoice)
        if invoice["amount_due"] <= 0:
            ok = True
        else:
            if pm_id is None:
                pm_id = self._default_pm(sub) if sub else None
                if pm_id is None:
                    customer = self.objects[invoice["customer"]]
                    pm_id = customer["invoice_settings"]["default_payment_method"]
            ok, _ = self._charge(pm_id)
            invoice["attempt_count"] += 1
            invoice["attempted"] = True
        before = self._public(invoice)
        if ok:
            invoice.update(
                status="paid",
                amount_paid=invoice["amount_due"],
                amount_remaining=0,
                attempted=True,
                next_payment_attempt=None,
                auto_advance=False,
                default_payment_method=invoice.get("default_payment_method"),
            )
            invoice["status_transitions"]["paid_at"] = at
            self._updated(invoice, before, "invoice.updated", at=at)
            self._emit("invoice.paid", invoice, at=at)
            self._emit("invoice.payment_succeeded", invoice, at=at)
            if sub is not None and sub["status"] in ("past_due", "unpaid", "incomplete"):
                self._set_status(sub, "active", at)
            return True
        invoice["_failures"] = int(invoice.get("_failures", 0)) + 1
        if invoice["_first_failed_at"] is None:
            invoice["_first_failed_at"] = at
        failures = invoice["_failures"]
        retry_at = None
        if sub is not None and sub["status"] == "incomplete":
            initial = True  # the first invoice is never retried: the subscription expires instead
        if not initial and failures <= len(self.retry_days):
            retry_at = int(invoice["_first_failed_at"]) + self.retry_days[failures - 1] * DAY
        invoice["next_payment_attempt"] = retry_at
        self._updated(invoice, before, "invoice.updated", at=at)
        self._emit("invoice.payment_failed", invoice, at=at)
        if sub is not None and not initial:
            if retry_at is None and failures > len(self.retry_days):
                self._final_failure(sub, invoice, at)
            elif sub["status"] in ("active", "trialing"):
                self._set_status(sub, "past_due", at)
        return False

    def _final_failure(self, sub: Obj, invoice: Obj, at: int) -> None:
        invoice["auto_advance"] = False
        if self.after_final_failure == "unpaid":
            self._set_status(sub, "unpaid", at)
        else:
            self._cancel_subscription(sub, at=at, reason="payment_failed")

    def invoice_list(self, params: Obj) -> Obj:
        objs = self._all("invoice")
        if params.get("customer"):
            objs = [i for i in objs if i["customer"] == params["customer"]]
        if params.get("subscription"):
            objs = [
                i
                for i in objs
                if ((i.get("parent") or {}).get("subscription_details") or {}).get("subscription")
                == params["subscription"]
            ]
        if params.get("status"):
            objs = [i for i in objs if i["status"] == params["status"]]
        objs = self._created_filter(objs, params.get("created"))
        return self._list(objs, params, "/v1/invoices")

    def invoice_retrieve(self, params: Obj, invoice_id: str) -> Obj:
        return self.render(self._get("invoice", invoice_id), params.get("expand"))

    def invoice_update(self, params: Obj, invoice_id: str) -> Obj:
        invoice = self._get("invoice", invoice_id)
        before = self._public(invoice)
        self._merge_metadata(invoice, params)
        if "description" in params:
            invoice["description"] = params["description"] or None
        if "auto_advance" in params:
            invoice["auto_advance"] = _bool(params["auto_advance"])
        self._updated(invoice, before, "invoice.updated")
        return self.render(invoice, params.get("expand"))

    def invoice_lines(self, params: Obj, invoice_id: str) -> Obj:
        invoice = self._get("invoice", invoice_id)
        lines = [dict(line, _seq=-n) for n, line in enumerate(invoice["lines"]["data"])]
        return self._list(lines, params, f"/v1/invoices/{invoice_id}/lines")

    def invoice_create(self, params: Obj) -> Obj:
        customer = self._get("customer", params.get("customer"), param="customer")
        at = self.now(customer["id"])
        sub = None
        if params.get("subscription"):
            sub = self._get("subscription", params["subscription"], param="subscription")
        include = params.get("pending_invoice_items_behavior", "exclude") == "include"
        invoice = self._create_invoice(customer["id"], sub, "manual", [], at, at, at, include_pending=include)
        invoice["collection_method"] = params.get("collection_method", "charge_automatically")
        invoice["auto_advance"] = _bool(params.get("auto_advance", "false"))
        self._merge_metadata(invoice, params)
        invoice["description"] = params.get("description") or None
        return self.render(invoice, params.get("expand"))

    def invoice_finalize(self, params: Obj, invoice_id: str) -> Obj:
        invoice = self._get("invoice", invoice_id)
        if invoice["status"] != "draft":
            raise invalid("This invoice is already finalized, you can't re-finalize a non-draft invoice.")
        at = self.now(invoice["customer"])
        self._finalize(invoice, at)
        if invoice["amount_due"] == 0:
            self._pay(invoice, at)
        return self.render(invoice, params.get("expand"))

    def invoice_pay(self, params: Obj, invoice_id: str) -> Obj:
        invoice = self._get("invoice", invoice_id)
        at = self.now(invoice["customer"])
        if invoice["status"] == "paid":
            raise invalid("Invoice is already paid", code="invoice_already_paid" if False else None)
        if invoice["status"] == "draft":
            self._finalize(invoice, at)
        if _bool(params.get("paid_out_of_band")):
            invoice["amount_due"] = 0
            self._pay(invoice, at)
            return self.render(invoice, params.get("expand"))
        pm_id = params.get("payment_method") or None
        if pm_id:
            self._get("payment_method", pm_id, param="payment_method")
        if not self._pay(invoice, at, pm_id=pm_id, initial=False, manual=True):
            self.save()
            raise card_declined()
        return self.render(invoice, params.get("expand"))

    def invoice_void(self, params: Obj, invoice_id: str) -> Obj:
        invoice = self._get("invoice", invoice_id)
        if invoice["status"] != "open":
            raise invalid("You can only pass in open invoices.")
        at = self.now(invoice["customer"])
        before = self._public(invoice)
        invoice.update(status="voided" if False else "void", next_payment_attempt=None, auto_advance=False)
        invoice["status_transitions"]["voided_at"] = at
        self._updated(invoice, before, "invoice.updated", at=at)
        self._emit("invoice.voided", invoice, at=at)
        return self.render(invoice, params.get("expand"))

    def invoice_uncollectible(self, params: Obj, invoice_id: str) -> Obj:
        invoice = self._get("invoice", invoice_id)
        if invoice["status"] != "open":
            raise invalid("You can only mark open invoices as uncollectible.")
        at = self.now(invoice["customer"])
        before = self._public(invoice)
        invoice.update(status="uncollectible", next_payment_attempt=None, auto_advance=False)
        invoice["status_transitions"]["marked_uncollectible_at"] = at
        self._updated(invoice, before, "invoice.updated", at=at)
        self._emit("invoice.marked_uncollectible", invoice, at=at)
        return self.render(invoice, params.get("expand"))

    def invoice_delete(self, params: Obj, invoice_id: str) -> Obj:
        invoice = self._get("invoice", invoice_id)
        if invoice["status"] != "draft":
            raise invalid("You can only delete draft invoices.")
        invoice["_deleted"] = True
        for ii in self._all("invoiceitem"):
            if ii["invoice"] == invoice_id:
                ii["invoice"] = None
        self._emit("invoice.deleted", invoice)
        deleted = example("deleted_invoice")
        deleted["id"] = invoice_id
        return deleted

    def invoice_preview(self, params: Obj) -> Obj:
        """``POST /v1/invoices/create_preview``, computed on a throw-away copy of the state.

        A change in ``subscription_details[items]`` (or a new subscription) is applied for real
        to the copy, with events muted, so the preview has exactly the prorations and amounts the
        change would make; then the state is put back.
        """
        original = self.state
        self.state = json.loads(json.dumps(original))  # callers' references stay on the original
        muted, self._muted = self._muted, True
        try:
            return self._invoice_preview(params)
        finally:
            self.state = original
            self._muted = muted

    def _preview_of(self, invoice: Obj, params: Obj) -> Obj:
        if invoice["status"] == "draft":
            balance = int(self.objects[invoice["customer"]]["balance"])
            due, _ = self._balance_amounts(int(invoice["total"]), balance)
            invoice.update(starting_balance=balance, amount_due=due, amount_remaining=due)
        out = self.render(invoice, params.get("expand"))
        out.update(id="upcoming_" + invoice["id"], status="draft", number=None)
        out["hosted_invoice_url"] = out["invoice_pdf"] = None
        return out

    def _invoice_preview(self, params: Obj) -> Obj:
        sub = None
        if params.get("subscription"):
            sub = self._get("subscription", params["subscription"], param="subscription")
        customer_id = params.get("customer") or (sub["customer"] if sub else None)
        customer = self._get("customer", customer_id, param="customer")
        details = params.get("subscription_details")
        details = details if isinstance(details, dict) else {}
        items = _as_list(details.get("items"))
        behaviour = details.get("proration_behavior", "create_prorations")
        if sub is None and items:
            create: Obj = {
                "customer": customer["id"],
                "items": items,
                "payment_behavior": "default_incomplete",
            }
            for key in ("trial_end", "trial_period_days"):
                if details.get(key):
                    create[key] = details[key]
            created = self.subscription_create(create)
            return self._preview_of(self.objects[created["latest_invoice"]], params)
        if sub is None:
            subs = [
                s
                for s in self._all("subscription")
                if s["customer"] == customer["id"] and s["status"] not in ("canceled", "incomplete_expired")
            ]
            sub = sorted(subs, key=lambda s: s["_seq"])[-1] if subs else None
        if sub is not None and (items or "cancel_at_period_end" in details):
            update: Obj = {"items": items, "proration_behavior": behaviour}
            if "cancel_at_period_end" in details:
                update["cancel_at_period_end"] = details["cancel_at_period_end"]
            latest = sub["latest_invoice"]
            self.subscription_update(update, sub["id"])
            sub = self.objects[sub["id"]]
            if behaviour == "always_invoice" and sub["latest_invoice"] != latest:
                return self._preview_of(self.objects[sub["latest_invoice"]], params)
        lines: list[Obj] = []
        at = self.now(customer["id"])
        start = end = at
        if sub is not None:
            start, end = self._period_start(sub), self._period_end(sub)
            if sub["status"] not in ("canceled", "paused") and not sub["cancel_at_period_end"]:
                upcoming = json.loads(json.dumps(sub))
                for item in upcoming["items"]["data"]:
                    recurring = self._item_price(item)["recurring"]
                    item["current_period_start"] = item["current_period_end"]
                    item["current_period_end"] = add_interval(
                        int(item["current_period_end"]), recurring["interval"], recurring["interval_count"]
                    )
                lines += self._licensed_lines(upcoming)
            lines += self._metered_lines(sub)
        lines += self._pending_item_lines(customer["id"], sub, claim=None)
        invoice = self._invoice_object(customer["id"], sub, "upcoming", lines, start, end, at)
        self._apply_discounts(invoice, sub, end, consume=False)
        invoice["created"] = end
        if sub is not None:
            invoice["next_payment_attempt"] = end
            invoice["billing_reason"] = "upcoming"
        return self._preview_of(invoice, params)

    # --- invoice items ------------------------------------------------------------------
    def _new_invoiceitem(
        self,
        *,
        customer_id: str,
        amount: int,
        currency: str,
        description: str,
        period: tuple[int, int],
        sub: Obj | None,
        price: Obj | None,
        quantity: int,
        proration: bool,
        at: int,
    ) -> Obj:
        ii = example("invoiceitem")
        ii.update(
            id=new_id("ii_"),
            amount=amount,
            currency=currency,
            customer=customer_id,
            date=at,
            description=description,
            discountable=True,
            discounts=[],
            invoice=None,
            livemode=False,
            metadata={},
            period={"start": period[0], "end": period[1]},
            proration=proration,
            quantity=quantity,
            tax_rates=[],
            test_clock=self.objects[customer_id]["test_clock"],
            parent={
                "subscription_details": {"subscription": sub["id"], "subscription_item": None},
                "type": "subscription_details",
            }
            if sub
            else None,
            pricing={
                "type": "price_details",
                "price_details": {"price": price["id"], "product": price["product"]} if price else None,
                "unit_amount_decimal": price["unit_amount_decimal"] if price else str(amount),
            },
            net_amount=amount,
            customer_account=None,
            quantity_decimal=str(quantity),
            _price=price["id"] if price else None,
        )
        self._store(ii)
        self._emit("invoiceitem.created", ii, at=at)
        return ii

    def invoiceitem_create(self, params: Obj) -> Obj:
        customer = self._get("customer", params.get("customer"), param="customer")
        at = self.now(customer["id"])
        sub = None
        if params.get("subscription"):
            sub = self._get("subscription", params["subscription"], param="subscription")
        price_id = params.get("price") or (params.get("pricing") or {}).get("price")
        price = self._get("price", price_id, param="price") if price_id else None
        quantity = _int(params.get("quantity", 1), "quantity")
        if price is not None:
            amount = self._price_amount(price, quantity)
            currency = price["currency"]
        else:
            if "amount" not in params:
                raise invalid("Missing required param: amount.", param="amount")
            amount = _int(params["amount"], "amount")
            currency = str(params.get("currency") or "usd").lower()
        period = params.get("period") or {}
        ii = self._new_invoiceitem(
            customer_id=customer["id"],
            amount=amount,
            currency=currency,
            description=params.get("description") or "Invoice item",
            period=(
                _int(period.get("start", at), "period[start]"),
                _int(period.get("end", at), "period[end]"),
            ),
            sub=sub,
            price=price,
            quantity=quantity,
            proration=False,
            at=at,
        )
        self._merge_metadata(ii, params)
        if params.get("invoice"):
            invoice = self._get("invoice", params["invoice"], param="invoice")
            if invoice["status"] != "draft":
                raise invalid("You can only add invoice items to draft invoices.", param="invoice")
            ii["invoice"] = invoice["id"]
            line = self._pending_line(ii, sub)
            line["invoice"] = invoice["id"]
            invoice["lines"]["data"].append(line)
            self._retotal(invoice)
        return self.render(ii, params.get("expand"))

    def _pending_line(self, ii: Obj, sub: Obj | None) -> Obj:
        price = self.objects.get(ii["_price"]) if ii.get("_price") else None
        return self._line(
            amount=ii["amount"],
            currency=ii["currency"],
            description=ii["description"],
            period=(ii["period"]["start"], ii["period"]["end"]),
            price=price,
            quantity=ii["quantity"],
            sub=sub,
            invoice_item=ii,
            proration=ii["proration"],
        )

    @staticmethod
    def _retotal(invoice: Obj) -> None:
        total = sum(int(line["amount"]) for line in invoice["lines"]["data"])
        invoice.update(
            subtotal=total,
            subtotal_excluding_tax=total,
            total=total,
            total_excluding_tax=total,
            amount_due=max(total, 0),
            amount_remaining=max(total, 0) - int(invoice["amount_paid"]),
        )

    def invoiceitem_list(self, params: Obj) -> Obj:
        objs = self._all("invoiceitem")
        if params.get("customer"):
            objs = [i for i in objs if i["customer"] == params["customer"]]
        if params.get("invoice"):
            objs = [i for i in objs if i["invoice"] == params["invoice"]]
        if "pending" in params:
            pending = _bool(params["pending"])
            objs = [i for i in objs if (i["invoice"] is None) == pending]
        return self._list(objs, params, "/v1/invoiceitems")

    def invoiceitem_retrieve(self, params: Obj, ii_id: str) -> Obj:
        return self.render(self._get("invoiceitem", ii_id), params.get("expand"))

    def invoiceitem_delete(self, params: Obj, ii_id: str) -> Obj:
        ii = self._get("invoiceitem", ii_id)
        if ii["invoice"] is not None:
            raise invalid("You can only delete invoice items that are not yet on an invoice.")
        ii["_deleted"] = True
        self._emit("invoiceitem.deleted", ii)
        deleted = example("deleted_invoiceitem")
        deleted["id"] = ii_id
        return deleted

    # --- subscriptions: updates ---------------------------------------------------------
    def subscription_list(self, params: Obj) -> Obj:
        objs = self._all("subscription")
        status = params.get("status")
        if status == "all":
            pass
        elif status:
            objs = [s for s in objs if s["status"] == status]
        else:
            objs = [s for s in objs if s["status"] not in ("canceled", "incomplete_expired")]
        if params.get("customer"):
            objs = [s for s in objs if s["customer"] == params["customer"]]
        if params.get("price"):
            objs = [s for s in objs if any(i["_price"] == params["price"] for i in s["items"]["data"])]
        if params.get("test_clock"):
            objs = [s for s in objs if s["test_clock"] == params["test_clock"]]
        objs = self._created_filter(objs, params.get("created"))
        return self._list(objs, params, "/v1/subscriptions")

    def subscription_retrieve(self, params: Obj, sub_id: str) -> Obj:
        return self.render(self._get("subscription", sub_id), params.get("expand"))

    def _find_item(self, sub: Obj, item_id: str) -> Obj:
        for item in sub["items"]["data"]:
            if item["id"] == item_id:
                return item
        raise missing("subscription item", item_id, param="items[0][id]")

    def _apply_item_spec(self, sub: Obj, spec: Obj, at: int, *, prorate: bool) -> list[tuple[Obj, Obj, Obj]]:
        """Apply one ``items[n]`` entry; return (old price, new price, item) for price changes."""
        changes: list[tuple[Obj, Obj, Obj]] = []
        if spec.get("id"):
            item = self._find_item(sub, spec["id"])
            if _bool(spec.get("deleted")):
                sub["items"]["data"].remove(item)
                changes.append((self._item_price(item) | {"_qty": item["quantity"]}, {}, item))
                return changes
            old_price = self._item_price(item)
            old_qty = item["quantity"]
            if spec.get("price") and spec["price"] != item["_price"]:
                new_price = self._get("price", spec["price"], param="items[0][price]")
                if not new_price["active"]:
                    raise invalid(
                        f"The price specified is inactive: {new_price['id']}.", param="items[0][price]"
                    )
                item["_price"] = new_price["id"]
                if new_price["recurring"]["usage_type"] == "metered":
                    item["quantity"] = None
                elif item["quantity"] is None:
                    item["quantity"] = 1
            if "quantity" in spec and item["quantity"] is not None:
                item["quantity"] = _int(spec["quantity"], "items[0][quantity]")
            self._merge_metadata(item, spec)
            if item["_price"] != old_price["id"] or item["quantity"] != old_qty:
                changes.append((old_price | {"_qty": old_qty}, self._item_price(item), item))
        else:
            item = self._new_item(sub, spec, at)
            item["current_period_start"] = self._period_start(sub)
            item["current_period_end"] = self._period_end(sub)
            sub["items"]["data"].append(item)
            changes.append(({}, self._item_price(item), item))
        return changes

    def subscription_update(self, params: Obj, sub_id: str) -> Obj:
        sub = self._get("subscription", sub_id)
        at = self.now(sub["customer"])
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise invalid(
                "A canceled subscription can only update its cancellation_details and metadata.",
            )
        before = self._public(sub)
        proration = _choice(params, "proration_behavior", _PRORATION, "create_prorations")
        _choice(params, "payment_behavior", _PAYMENT_BEHAVIOR, "allow_incomplete")
        if "default_payment_method" in params:
            pm_id = params["default_payment_method"] or None
            if pm_id:
                pm = self._get("payment_method", pm_id, param="default_payment_method")
                if pm["customer"] != sub["customer"]:
                    raise invalid(
                        f"The customer does not have a payment method with the ID {pm_id}. The payment "
                        "method must be attached to the customer.",
                        param="default_payment_method",
                    )
            sub["default_payment_method"] = pm_id
        self._merge_metadata(sub, params)
        if "description" in params:
            sub["description"] = params["description"] or None
        if "discounts" in params:
            self._set_discounts(sub, params["discounts"], at)
        changes: list[tuple[Obj, Obj, Obj]] = []
        for index, spec in enumerate(_as_list(params.get("items"))):
            try:
                changes += self._apply_item_spec(sub, spec, at, prorate=True)
            except ApiError as exc:
                if exc.param:
                    exc.param = exc.param.replace("items[0]", f"items[{index}]")
                raise
        if not sub["items"]["data"]:
            raise invalid("A subscription must have at least one item.", param="items")
        invoice_now = False
        anchor = params.get("billing_cycle_anchor")
        if anchor not in (None, "", "now", "unchanged"):
            raise invalid(
                "Invalid billing_cycle_anchor: must be one of now or unchanged", param="billing_cycle_anchor"
            )
        anchor_now = anchor == "now" and sub["status"] in ("active", "past_due")
        if anchor_now:
            self._reset_cycle(sub, changes, at, proration)
        elif changes and sub["status"] != "trialing":
            invoice_now = self._prorate(sub, changes, at, proration)
        if params.get("trial_end") not in (None, ""):
            if params["trial_end"] == "now":
                if sub["status"] == "trialing":
                    self._end_trial(sub, at)
            else:
                trial_end = _int(params["trial_end"], "trial_end")
                sub["trial_end"] = trial_end
                self._set_periods(sub, self._period_start(sub), trial_end)
                sub["status"] = "trialing"
        if "cancel_at_period_end" in params:
            self._set_cancel_at_period_end(sub, _bool(params["cancel_at_period_end"]), at, params)
        if "cancel_at" in params:
            sub["cancel_at"] = _int(params["cancel_at"], "cancel_at") if params["cancel_at"] else None
        if isinstance(params.get("pause_collection"), dict):
            sub["pause_collection"] = {
                "behavior": params["pause_collection"].get("behavior", "void"),
                "resumes_at": None,
            }
        elif params.get("pause_collection") == "":
            sub["pause_collection"] = None
        self._updated(sub, before, "customer.subscription.updated", at=at)
        if invoice_now:
            invoice = self._create_invoice(
                sub["customer"], sub, "subscription_update", [], at, self._period_end(sub), at
            )
            self._finalize(invoice, at)
            self._pay(invoice, at)
        return self.render(sub, params.get("expand"))

    def _reset_cycle(self, sub: Obj, changes: list[tuple[Obj, Obj, Obj]], at: int, proration: str) -> None:
        """``billing_cycle_anchor=now``: credit the unused time of what was billed, start a new
        period now and invoice it at once."""
        old_by_item = {item["id"]: (old, old.get("_qty")) for old, _, item in changes if old}
        if proration != "none":
            billed: list[tuple[Obj, Obj | None, Any]] = [
                (item, *old_by_item.get(item["id"], (None, None))) for item in sub["items"]["data"]
            ]
            billed += [(item, old, old.get("_qty")) for old, new, item in changes if not new and old]
            for item, old, qty in billed:
                price = old or self._item_price(item)
                if price["recurring"]["usage_type"] != "licensed":
                    continue
                start, end = int(item["current_period_start"]), int(item["current_period_end"])
                quantity = (qty if old else item["quantity"]) or 1
                self._proration_item(sub, price, quantity, at, end, start, credit=True)
        self._set_periods(sub, at)
        sub["billing_cycle_anchor"] = at
        invoice = self._create_invoice(
            sub["customer"],
            sub,
            "subscription_update",
            self._licensed_lines(sub),
            at,
            self._period_end(sub),
            at,
        )
        self._finalize(invoice, at)
        self._pay(invoice, at)

    def _set_cancel_at_period_end(self, sub: Obj, value: bool, at: int, params: Obj) -> None:
        sub["cancel_at_period_end"] = value
        details = params.get("cancellation_details") or {}
        if value:
            sub["cancel_at"] = self._period_end(sub)
            sub["canceled_at"] = at
            sub["cancellation_details"] = {
                "comment": details.get("comment") or None,
                "feedback": details.get("feedback") or None,
                "reason": "cancellation_requested",
            }
        else:
            sub["cancel_at"] = None
            sub["canceled_at"] = None
            sub["cancellation_details"] = {"comment": None, "feedback": None, "reason": None}

    def _prorate(self, sub: Obj, changes: list[tuple[Obj, Obj, Obj]], at: int, behaviour: str) -> bool:
        """Prorations for price/quantity changes; True if an invoice must be made now."""
        if behaviour == "none":
            return False
        invoice_now = behaviour == "always_invoice"
        for old, new, item in changes:
            start, end = int(item["current_period_start"]), int(item["current_period_end"])
            old_interval = (old.get("recurring") or {}).get("interval")
            if not new:  # an item removed: credit its unused time
                if old["recurring"]["usage_type"] == "licensed":
                    self._proration_item(sub, old, old.get("_qty") or 1, at, end, start, credit=True)
                continue
            new_recurring = new["recurring"]
            if old and old_interval != new_recurring["interval"]:
                # A new interval resets the billing cycle: credit the unused time, bill the new period now.
                self._proration_item(sub, old, old.get("_qty") or 1, at, end, start, credit=True)
                for other in sub["items"]["data"]:
                    recurring = self._item_price(other)["recurring"]
                    other["current_period_start"] = at
                    other["current_period_end"] = add_interval(
                        at, recurring["interval"], recurring["interval_count"]
                    )
                sub["billing_cycle_anchor"] = at
                self._proration_item(
                    sub,
                    new,
                    item["quantity"] or 1,
                    at,
                    int(item["current_period_end"]),
                    at,
                    credit=False,
                    full=True,
                )
                invoice_now = True
                continue
            if old and old["recurring"]["usage_type"] == "licensed":
                self._proration_item(sub, old, old.get("_qty") or 1, at, end, start, credit=True)
            if new_recurring["usage_type"] == "licensed":
                self._proration_item(sub, new, item["quantity"] or 1, at, end, start, credit=False)
        return invoice_now

    def _proration_item(
        self,
        sub: Obj,
        price: Obj,
        quantity: int,
        at: int,
        end: int,
        start: int,
        *,
        credit: bool,
        full: bool = False,
    ) -> None:
        span = max(end - start, 1)
        fraction = Decimal(1) if full else Decimal(max(end - at, 0)) / Decimal(span)
        amount = int(
            (Decimal(self._price_amount(price, quantity)) * fraction).quantize(
                Decimal(1), rounding=ROUND_HALF_UP
            )
        )
        product = self.objects.get(price["product"], {})
        name = product.get("name", "product")
        description = (
            f"Unused time on {quantity} × {name} after {time.strftime('%d %b %Y', time.gmtime(at))}"  # noqa: RUF001 - the sign Stripe writes
            if credit
            else f"Remaining time on {quantity} × {name} after {time.strftime('%d %b %Y', time.gmtime(at))}"  # noqa: RUF001 - the sign Stripe writes
        )
        self._new_invoiceitem(
            customer_id=sub["customer"],
            amount=-amount if credit else amount,
            currency=price["currency"],
            description=description,
            period=(at, end),
            sub=sub,
            price=price,
            quantity=quantity,
            proration=not full,
            at=at,
        )

    def _cancel_subscription(self, sub: Obj, *, at: int, reason: str = "cancellation_requested") -> None:
        before = self._public(sub)
        sub.update(status="canceled", ended_at=at, cancel_at_period_end=False)
        if sub["canceled_at"] is None:
            sub["canceled_at"] = at
        sub["cancellation_details"] = dict(sub["cancellation_details"] or {}) | {"reason": reason}
        for invoice in self._all("invoice"):
            if self._invoice_sub(invoice) is sub and invoice["status"] == "open":
                invoice["next_payment_attempt"] = None
        previous = _diff(before, self._public(sub))
        self._emit("customer.subscription.deleted", sub, previous=previous, at=at)

    def subscription_cancel(self, params: Obj, sub_id: str) -> Obj:
        sub = self._get("subscription", sub_id)
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise invalid(f"No such subscription: '{sub_id}'", code="resource_missing", param="id")
        at = self.now(sub["customer"])
        details = params.get("cancellation_details") or {}
        sub["canceled_at"] = at
        sub["cancellation_details"] = {
            "comment": details.get("comment") or None,
            "feedback": details.get("feedback") or None,
            "reason": "cancellation_requested",
        }
        if _bool(params.get("prorate")) and sub["status"] != "trialing":
            for item in sub["items"]["data"]:
                price = self._item_price(item)
                if price["recurring"]["usage_type"] == "licensed":
                    start, end = int(item["current_period_start"]), int(item["current_period_end"])
                    self._proration_item(sub, price, item["quantity"] or 1, at, end, start, credit=True)
        if _bool(params.get("invoice_now")):
            lines = self._metered_lines(sub, end=at + 1)  # usage up to and including now
            pending = self._pending_item_lines(sub["customer"], sub, claim=None)
            if any(line["amount"] for line in lines) or pending:
                start = self._period_start(sub)
                invoice = self._create_invoice(
                    sub["customer"], sub, "subscription_cycle", lines, start, at, at
                )
                self._finalize(invoice, at)
                self._pay(invoice, at)
        self._cancel_subscription(sub, at=at)
        return self.render(sub, params.get("expand"))

    def subscription_resume(self, params: Obj, sub_id: str) -> Obj:
        sub = self._get("subscription", sub_id)
        if sub["status"] != "paused":
            raise invalid("Only paused subscriptions can be resumed.")
        at = self.now(sub["customer"])
        before = self._public(sub)
        self._set_periods(sub, at)
        sub["billing_cycle_anchor"] = at
        sub["status"] = "active"
        invoice = self._create_invoice(
            sub["customer"],
            sub,
            "subscription_update",
            self._licensed_lines(sub),
            at,
            self._period_end(sub),
            at,
        )
        self._finalize(invoice, at)
        self._emit("customer.subscription.resumed", sub, at=at)
        self._updated(sub, before, "customer.subscription.updated", at=at)
        if not self._pay(invoice, at):
            self._set_status(sub, "past_due", at)
        return self.render(sub, params.get("expand"))

    # --- subscription items -------------------------------------------------------------
    def _sub_of_item(self, item_id: str) -> tuple[Obj, Obj]:
        for sub in self._all("subscription"):
            for item in sub["items"]["data"]:
                if item["id"] == item_id:
                    return sub, item
        raise missing("subscription item", item_id)

    def item_list(self, params: Obj) -> Obj:
        sub = self._get("subscription", params.get("subscription"), param="subscription")
        items = [dict(i) for i in sub["items"]["data"]]
        for n, item in enumerate(items):
            item["_seq"] = -n
        return self._list(items, params, f"/v1/subscription_items?subscription={sub['id']}")

    def item_retrieve(self, params: Obj, item_id: str) -> Obj:
        _, item = self._sub_of_item(item_id)
        return self.render(item | {"object": "subscription_item"}, params.get("expand"))

    def item_update(self, params: Obj, item_id: str) -> Obj:
        sub, _ = self._sub_of_item(item_id)
        spec = {k: v for k, v in params.items() if k in ("price", "quantity", "metadata")} | {"id": item_id}
        update = {"items": [spec]}
        if "proration_behavior" in params:
            update["proration_behavior"] = params["proration_behavior"]
        self.subscription_update(update, sub["id"])
        _, item = self._sub_of_item(item_id)
        return self.render(item, params.get("expand"))

    def item_create(self, params: Obj) -> Obj:
        sub = self._get("subscription", params.get("subscription"), param="subscription")
        spec = {k: v for k, v in params.items() if k in ("price", "quantity", "metadata")}
        update: Obj = {"items": [spec]}
        if "proration_behavior" in params:
            update["proration_behavior"] = params["proration_behavior"]
        self.subscription_update(update, sub["id"])
        return self.render(sub["items"]["data"][-1], params.get("expand"))

    def item_delete(self, params: Obj, item_id: str) -> Obj:
        sub, _ = self._sub_of_item(item_id)
        update: Obj = {"items": [{"id": item_id, "deleted": "true"}]}
        if "proration_behavior" in params:
            update["proration_behavior"] = params["proration_behavior"]
        self.subscription_update(update, sub["id"])
        deleted = example("deleted_subscription_item")
        deleted["id"] = item_id
        return deleted

    # --- scheduled work (test clocks) ---------------------------------------------------
    def _due(self, clock_id: str | None, until: int) -> tuple[int, str, Obj] | None:
        """The earliest piece of work due on this clock (None: real time) at or before ``until``."""
        best: tuple[int, int, str, Obj] | None = None

        def consider(at: int, order: int, kind: str, obj: Obj) -> None:
            nonlocal best
            if at <= until and (best is None or (at, order) < best[:2]):
                best = (at, order, kind, obj)

        for sub in self._all("subscription"):
            if sub["test_clock"] != clock_id:
                continue
            if sub["status"] == "trialing" and sub["trial_end"]:
                if not sub["_trial_will_end_sent"] and int(sub["trial_end"]) - 3 * DAY > int(
                    sub["trial_start"] or 0
                ):
                    consider(int(sub["trial_end"]) - 3 * DAY, 0, "trial_will_end", sub)
                consider(int(sub["trial_end"]), 1, "trial_end", sub)
            elif sub["status"] in ("active", "past_due", "unpaid"):
                end = self._period_end(sub)
                consider(end, 2, "renew", sub)
                notice = end - self.upcoming_days * DAY
                if (
                    self.upcoming_days
                    and not sub["cancel_at_period_end"]
                    and sub.get("_upcoming_for") != end
                    and notice > self._period_start(sub)
                ):
                    consider(notice, 0, "upcoming", sub)
            elif sub["status"] == "incomplete":
                consider(int(sub["created"]) + 23 * 3600, 2, "expire", sub)
        for invoice in self._all("invoice"):
            if (
                invoice["test_clock"] == clock_id
                and (clock_id is not None or self.objects[invoice["customer"]]["test_clock"] is None)
                and invoice["status"] == "open"
                and invoice["next_payment_attempt"]
            ):
                consider(int(invoice["next_payment_attempt"]), 3, "retry", invoice)
            if (
                invoice["test_clock"] == clock_id
                and invoice["status"] == "open"
                and invoice["collection_method"] == "send_invoice"
                and invoice["due_date"]
                and not invoice.get("_overdue")
            ):
                consider(int(invoice["due_date"]), 3, "overdue", invoice)
        if best is None:
            return None
        return best[0], best[2], best[3]

    def _run(self, kind: str, obj: Obj, at: int) -> None:
        if kind == "trial_will_end":
            obj["_trial_will_end_sent"] = True
            self._emit("customer.subscription.trial_will_end", obj, at=at)
        elif kind == "trial_end":
            self._end_trial(obj, at)
        elif kind == "renew":
            self._renew(obj, at)
        elif kind == "upcoming":
            end = self._period_end(obj)
            preview = self.invoice_preview({"customer": obj["customer"], "subscription": obj["id"]})
            obj["_upcoming_for"] = end
            preview["id"] = None  # Stripe's invoice.upcoming carries an invoice that has no id yet
            self._emit("invoice.upcoming", preview, at=at)
        elif kind == "expire":
            before = self._public(obj)
            obj.update(status="incomplete_expired", ended_at=at)
            for invoice in self._all("invoice"):
                if self._invoice_sub(invoice) is obj and invoice["status"] == "open":
                    invoice.update(status="void", next_payment_attempt=None)
                    invoice["status_transitions"]["voided_at"] = at
            self._updated(obj, before, "customer.subscription.updated", at=at)
        elif kind == "overdue":
            obj["_overdue"] = True
            self._emit("invoice.overdue", obj, at=at)
            sub = self._invoice_sub(obj)
            if sub is not None and sub["status"] == "active":
                self._set_status(sub, "past_due", at)
        elif kind == "retry":
            sub = self._invoice_sub(obj)
            if sub is not None and sub["status"] == "canceled":
                obj["next_payment_attempt"] = None
                return
            self._pay(obj, at)

    def _end_trial(self, sub: Obj, at: int) -> None:
        before = self._public(sub)
        has_pm = self._default_pm(sub) is not None
        behaviour = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
        sub["trial_end"] = at if sub["trial_end"] is None or int(sub["trial_end"]) > at else sub["trial_end"]
        if not has_pm and behaviour == "cancel":
            self._cancel_subscription(sub, at=at, reason="cancellation_requested")
            return
        if not has_pm and behaviour == "pause":
            sub["status"] = "paused"
            self._emit("customer.subscription.paused", sub, at=at)
            self._updated(sub, before, "customer.subscription.updated", at=at)
            return
        self._set_periods(sub, at)
        sub["billing_cycle_anchor"] = at
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = self._period_end(sub)
        sub["status"] = "active"
        invoice = self._create_invoice(
            sub["customer"],
            sub,
            "subscription_cycle",
            self._licensed_lines(sub),
            at,
            self._period_end(sub),
            at,
        )
        self._updated(sub, before, "customer.subscription.updated", at=at)
        self._finalize(invoice, at)
        self._pay(invoice, at)

    def _renew(self, sub: Obj, at: int) -> None:
        old_start, old_end = self._period_start(sub), self._period_end(sub)
        usage = self._metered_lines(sub, old_start, old_end)
        if sub["cancel_at_period_end"]:
            if any(line["amount"] for line in usage):
                invoice = self._create_invoice(
                    sub["customer"], sub, "subscription_cycle", usage, old_start, old_end, at
                )
                self._finalize(invoice, at)
                self._pay(invoice, at)
            self._cancel_subscription(sub, at=at)
            return
        before = self._public(sub)
        for item in sub["items"]["data"]:
            recurring = self._item_price(item)["recurring"]
            if int(item["current_period_end"]) <= at:
                item["current_period_start"] = item["current_period_end"]
                item["current_period_end"] = add_interval(
                    int(item["current_period_end"]),
                    recurring["interval"],
                    recurring["interval_count"],
                    anchor_day=time.gmtime(int(sub["billing_cycle_anchor"])).tm_mday,
                )
        self._updated(sub, before, "customer.subscription.updated", at=at)
        lines = self._licensed_lines(sub) + usage
        invoice = self._create_invoice(
            sub["customer"], sub, "subscription_cycle", lines, old_end, self._period_end(sub), at
        )
        self._finalize(invoice, at)
        if sub["status"] == "unpaid":
            return  # Stripe leaves invoices of unpaid subscriptions open without charging.
        self._pay(invoice, at)

    # --- checkout -----------------------------------------------------------------------
    def checkout_create(self, params: Obj) -> Obj:
        mode = params.get("mode")
        if mode not in ("subscription", "setup", "payment"):
            raise invalid("Missing required param: mode.", param="mode")
        if not params.get("success_url") and params.get("ui_mode") != "embedded":
            raise invalid("Missing required param: success_url.", param="success_url")
        customer_id = params.get("customer") or None
        if customer_id:
            self._get("customer", customer_id, param="customer")
        items = []
        for index, spec in enumerate(_as_list(params.get("line_items"))):
            price = self._get("price", spec.get("price"), param=f"line_items[{index}][price]")
            quantity = spec.get("quantity")
            metered = (price.get("recurring") or {}).get("usage_type") == "metered"
            items.append(
                {"price": price["id"], "quantity": None if metered else _int(quantity or 1, "quantity")}
            )
        if mode == "subscription" and not items:
            raise invalid(
                "You must provide at least one recurring price in `subscription` mode.", param="line_items"
            )
        session = example("checkout.session")
        session_id = "cs_test_" + new_id("", 58)
        amount = sum(
            self._price_amount(self.objects[i["price"]], i["quantity"])
            for i in items
            if i["quantity"] is not None
        )
        sub_data = params.get("subscription_data") or {}
        at = self.now(customer_id)
        session.update(
            id=session_id,
            after_expiration=None,
            amount_subtotal=amount,
            amount_total=amount,
            cancel_url=params.get("cancel_url") or None,
            client_reference_id=params.get("client_reference_id") or None,
            consent=None,
            consent_collection=None,
            created=at,
            currency=self.objects[items[0]["price"]]["currency"] if items else None,
            custom_text={
                "after_submit": None,
                "shipping_address": None,
                "submit": None,
                "terms_of_service_acceptance": None,
            },
            customer=customer_id,
            customer_creation="always" if not customer_id else None,
            customer_details=None,
            customer_email=params.get("customer_email") or None,
            expires_at=at + DAY,
            invoice=None,
            invoice_creation=None,
            livemode=False,
            metadata={},
            mode=mode,
            payment_intent=None,
            payment_method_collection=params.get("payment_method_collection", "always"),
            allow_promotion_codes=_bool(params["allow_promotion_codes"])
            if "allow_promotion_codes" in params
            else None,
            payment_method_configuration_details=None,
            payment_status="unpaid",
            shipping_address_collection=None,
            shipping_cost=None,
            status="open",
            subscription=None,
            success_url=params.get("success_url"),
            total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            url=f"{self.base_url}/checkout/{session_id}",
            adaptive_pricing=None,
            collected_information=None,
            currency_conversion=None,
            managed_payments=None,
            _items=items,
            _subscription_data=sub_data if isinstance(sub_data, dict) else {},
            _discounts=_as_list(params.get("discounts")),
        )
        self._merge_metadata(session, params)
        self._store(session)
        return self.render(session, params.get("expand"))

    def checkout_list(self, params: Obj) -> Obj:
        objs = self._all("checkout.session")
        for field in ("customer", "subscription", "status"):
            if params.get(field):
                objs = [s for s in objs if s[field] == params[field]]
        return self._list(objs, params, "/v1/checkout/sessions")

    def checkout_retrieve(self, params: Obj, session_id: str) -> Obj:
        return self.render(self._get("checkout.session", session_id), params.get("expand"))

    def checkout_expire(self, params: Obj, session_id: str) -> Obj:
        session = self._get("checkout.session", session_id)
        if session["status"] != "open":
            raise invalid('Only Checkout Sessions with a status in ["open"] can be expired.')
        session["status"] = "expired"
        session["url"] = None
        self._emit("checkout.session.expired", session)
        return self.render(session, params.get("expand"))

    def checkout_line_items(self, params: Obj, session_id: str) -> Obj:
        session = self._get("checkout.session", session_id)
        data = []
        for n, spec in enumerate(session["_items"]):
            price = self.objects[spec["price"]]
            amount = self._price_amount(price, spec["quantity"]) if spec["quantity"] is not None else 0
            product = self.objects.get(price["product"], {})
            item = example("item")
            item.update(
                id=spec.setdefault("id", new_id("li_")),
                adjustable_quantity=None,
                amount_discount=0,
                amount_subtotal=amount,
                amount_tax=0,
                amount_total=amount,
                currency=price["currency"],
                description=product.get("name"),
                metadata={},
                price=self._public(price),
                quantity=spec["quantity"],
                _seq=-n,
            )
            item.pop("discounts", None)
            item.pop("taxes", None)
            data.append(item)
        return self._list(data, params, f"/v1/checkout/sessions/{session_id}/line_items")

    def checkout_complete(
        self, session_id: str, *, card: str, email: str | None, promotion_code: str | None = None
    ) -> Obj:
        """The hosted page's submit: customer, card, subscription, then ``checkout.session.completed``."""
        with self.lock:
            session = self._get("checkout.session", session_id)
            if session["status"] != "open":
                raise invalid("This Checkout Session is no longer open.")
            sub_data = session["_subscription_data"]
            trial = bool(sub_data.get("trial_period_days") or sub_data.get("trial_end"))
            if promotion_code:
                promo = self.promotion_code_by_code(promotion_code)
                if promo is None or not session["allow_promotion_codes"]:
                    raise ApiError(400, "This code is invalid.", param="promotion_code")
                session["_discounts"] = [{"promotion_code": promo["id"]}]
            if not card:
                if session["payment_method_collection"] != "if_required" or (
                    session["amount_total"] and not trial
                ):
                    raise ApiError(
                        400, "Your card number is incomplete.", type="card_error", code="incomplete_number"
                    )
                return self._complete_session(session, None, email, trial)
            test_pm = self._test_pm_for(card, param="card[number]")
            behaviour = TEST_PAYMENT_METHODS[test_pm][2]
            if behaviour in ("decline", "insufficient_funds"):
                raise card_declined(
                    decline_code="insufficient_funds"
                    if behaviour == "insufficient_funds"
                    else "generic_decline"
                )
            if behaviour == "charge_fail" and session["amount_total"] and not trial:
                raise card_declined()
            return self._complete_session(session, test_pm, email, trial)

    def _complete_session(self, session: Obj, test_pm: str | None, email: str | None, trial: bool) -> Obj:
        with self.lock:
            sub_data = session["_subscription_data"]
            if session["customer"]:
                customer = self.objects[session["customer"]]
            else:
                created = self.customer_create({"email": email or session["customer_email"] or ""})
                customer = self.objects[created["id"]]
            pm = self._attach(test_pm, customer) if test_pm else None
            before = self._public(customer)
            if pm is not None:
                customer["invoice_settings"]["default_payment_method"] = pm["id"]
            if email and not customer["email"]:
                customer["email"] = email
            self._updated(customer, before, "customer.updated")
            at = self.now(customer["id"])
            if session["mode"] == "subscription":
                sub_params: Obj = {
                    "customer": customer["id"],
                    "items": [
                        {"price": i["price"]} | ({"quantity": i["quantity"]} if i["quantity"] else {})
                        for i in session["_items"]
                    ],
                    "default_payment_method": pm["id"] if pm else "",
                    "metadata": sub_data.get("metadata") or {},
                }
                for key in ("trial_period_days", "trial_end", "trial_settings", "description"):
                    if sub_data.get(key):
                        sub_params[key] = sub_data[key]
                if session.get("_discounts"):
                    sub_params["discounts"] = session["_discounts"]
                sub = self.subscription_create(sub_params)
                session["subscription"] = sub["id"]
                session["invoice"] = sub["latest_invoice"]
            session.update(
                status="complete",
                customer=customer["id"],
                payment_status="no_payment_required" if trial or not session["amount_total"] else "paid",
                url=None,
            )
            session["customer_details"] = {
                "address": None,
                "email": customer["email"],
                "name": customer["name"],
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": [],
                "business_name": None,
                "individual_name": None,
            }
            self._emit("checkout.session.completed", session, at=at)
            self.save()
            return self._public(session)

    # --- billing portal -----------------------------------------------------------------
    def _portal_configuration_id(self, params: Obj) -> str:
        if params.get("configuration"):
            config = self._get("billing_portal.configuration", params["configuration"], param="configuration")
            return str(config["id"])
        default = [c for c in self._all("billing_portal.configuration") if c["is_default"]]
        return str(default[0]["id"]) if default else "bpc_local_default"

    def portal_create(self, params: Obj) -> Obj:
        customer = self._get("customer", params.get("customer"), param="customer")
        session = example("billing_portal.session")
        session_id = new_id("bps_")
        config_id = self._portal_configuration_id(params)
        config = self.objects.get(config_id) or {}
        session.update(
            id=session_id,
            configuration=config_id,
            created=self.now(customer["id"]),
            customer=customer["id"],
            flow=None,
            livemode=False,
            locale=params.get("locale") or None,
            on_behalf_of=None,
            return_url=params.get("return_url") or config.get("default_return_url") or None,
            url=f"{self.base_url}/portal/{session_id}",
            customer_account=None,
        )
        self._store(session)
        self._emit("billing_portal.session.created", session)
        return self.render(session, params.get("expand"))

    DEFAULT_PORTAL_FEATURES: Obj = {
        "customer_update": {"allowed_updates": ["email"], "enabled": True},
        "invoice_history": {"enabled": True},
        "payment_method_update": {"enabled": True, "payment_method_configuration": None},
        "subscription_cancel": {
            "cancellation_reason": {"enabled": False, "options": []},
            "enabled": True,
            "mode": "at_period_end",
            "proration_behavior": "none",
        },
        "subscription_update": {
            "default_allowed_updates": ["price"],
            "enabled": True,
            "proration_behavior": "create_prorations",
            "products": None,
            "schedule_at_period_end": {"conditions": []},
            "trial_update_behavior": "end_trial",
            "billing_cycle_anchor": None,
        },
    }

    def portal_features(self, configuration_id: str | None) -> Obj:
        """The portal's features: its configuration's, or all on (switch between any prices)."""
        config = self.objects.get(configuration_id or "")
        if config is None or config.get("object") != "billing_portal.configuration":
            return json.loads(json.dumps(self.DEFAULT_PORTAL_FEATURES))
        features: Obj = config["features"]
        return features

    @staticmethod
    def _deep_merge(target: Obj, update: Obj) -> None:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                Backend._deep_merge(target[key], value)
            elif isinstance(value, str) and value in ("true", "false"):
                target[key] = value == "true"
            else:
                target[key] = value

    def _portal_config_apply(self, config: Obj, params: Obj) -> None:
        features = params.get("features")
        if isinstance(features, dict):
            update = json.loads(json.dumps(features))
            products = (update.get("subscription_update") or {}).get("products")
            if products is not None:
                update["subscription_update"]["products"] = [
                    {
                        "product": p.get("product"),
                        "prices": _as_list(p.get("prices")),
                        "adjustable_quantity": None,
                    }
                    for p in _as_list(products)
                ]
            for key in ("default_allowed_updates",):
                if key in (update.get("subscription_update") or {}):
                    update["subscription_update"][key] = _as_list(update["subscription_update"][key])
            self._deep_merge(config["features"], update)
        if isinstance(params.get("business_profile"), dict):
            config["business_profile"].update(params["business_profile"])
        if "default_return_url" in params:
            config["default_return_url"] = params["default_return_url"] or None
        if "active" in params:
            config["active"] = _bool(params["active"])
        if "name" in params:
            config["name"] = params["name"] or None
        self._merge_metadata(config, params)

    def portal_config_create(self, params: Obj) -> Obj:
        config = example("billing_portal.configuration")
        now = self.now()
        config.update(
            id=new_id("bpc_"),
            created=now,
            updated=now,
            livemode=False,
            is_default=not self._all("billing_portal.configuration"),
            metadata={},
            default_return_url=None,
            business_profile={"headline": None, "privacy_policy_url": None, "terms_of_service_url": None},
            features=json.loads(json.dumps(self.DEFAULT_PORTAL_FEATURES)),
        )
        config["features"]["subscription_update"].update(enabled=False, proration_behavior="none")
        config["features"]["subscription_cancel"]["enabled"] = False
        config["features"]["payment_method_update"]["enabled"] = False
        self._portal_config_apply(config, params)
        self._store(config)
        self._emit("billing_portal.configuration.created", config)
        return self.render(config, params.get("expand"))

    def portal_config_list(self, params: Obj) -> Obj:
        objs = self._all("billing_portal.configuration")
        for field in ("active", "is_default"):
            if field in params:
                objs = [c for c in objs if c[field] == _bool(params[field])]
        return self._list(objs, params, "/v1/billing_portal/configurations")

    def portal_config_retrieve(self, params: Obj, config_id: str) -> Obj:
        return self.render(self._get("billing_portal.configuration", config_id), params.get("expand"))

    def portal_config_update(self, params: Obj, config_id: str) -> Obj:
        config = self._get("billing_portal.configuration", config_id)
        before = self._public(config)
        self._portal_config_apply(config, params)
        config["updated"] = self.now()
        self._updated(config, before, "billing_portal.configuration.updated")
        return self.render(config, params.get("expand"))

    # --- billing meters -----------------------------------------------------------------
    def meter_create(self, params: Obj) -> Obj:
        for field in ("display_name", "event_name"):
            if not params.get(field):
                raise invalid(f"Missing required param: {field}.", param=field)
        aggregation = (params.get("default_aggregation") or {}).get("formula")
        if aggregation not in ("sum", "count", "last"):
            raise invalid(
                "Missing required param: default_aggregation[formula].", param="default_aggregation"
            )
        for other in self._all("billing.meter"):
            if other["event_name"] == params["event_name"] and other["status"] == "active":
                raise invalid(
                    f"A meter with event_name `{params['event_name']}` already exists.", param="event_name"
                )
        mapping = params.get("customer_mapping") or {}
        value = params.get("value_settings") or {}
        meter = example("billing.meter")
        now = self.now()
        meter.update(
            id=new_id("mtr_test_", 32),
            created=now,
            updated=now,
            customer_mapping={
                "event_payload_key": mapping.get("event_payload_key", "stripe_customer_id"),
                "type": mapping.get("type", "by_id"),
            },
            default_aggregation={"formula": aggregation},
            display_name=params["display_name"],
            event_name=params["event_name"],
            event_time_window=params.get("event_time_window") or None,
            livemode=False,
            status="active",
            status_transitions={"deactivated_at": None},
            value_settings={"event_payload_key": value.get("event_payload_key", "value")},
        )
        self._store(meter)
        self._emit("billing.meter.created", meter)
        return self.render(meter, params.get("expand"))

    def meter_list(self, params: Obj) -> Obj:
        objs = self._all("billing.meter")
        if params.get("status"):
            objs = [m for m in objs if m["status"] == params["status"]]
        return self._list(objs, params, "/v1/billing/meters")

    def meter_retrieve(self, params: Obj, meter_id: str) -> Obj:
        return self.render(self._get("billing.meter", meter_id), params.get("expand"))

    def meter_update(self, params: Obj, meter_id: str) -> Obj:
        meter = self._get("billing.meter", meter_id)
        before = self._public(meter)
        if params.get("display_name"):
            meter["display_name"] = params["display_name"]
        meter["updated"] = self.now()
        self._updated(meter, before, "billing.meter.updated")
        return self.render(meter, params.get("expand"))

    def meter_deactivate(self, params: Obj, meter_id: str) -> Obj:
        meter = self._get("billing.meter", meter_id)
        before = self._public(meter)
        now = self.now()
        meter.update(status="inactive", updated=now, status_transitions={"deactivated_at": now})
        self._updated(meter, before, "billing.meter.deactivated")
        return self.render(meter, params.get("expand"))

    def meter_reactivate(self, params: Obj, meter_id: str) -> Obj:
        meter = self._get("billing.meter", meter_id)
        before = self._public(meter)
        meter.update(status="active", updated=self.now(), status_transitions={"deactivated_at": None})
        self._updated(meter, before, "billing.meter.reactivated")
        return self.render(meter, params.get("expand"))

    def meter_summaries(self, params: Obj, meter_id: str) -> Obj:
        meter = self._get("billing.meter", meter_id)
        customer = self._get("customer", params.get("customer"), param="customer")
        for field in ("start_time", "end_time"):
            if params.get(field) in (None, ""):
                raise invalid(f"Missing required param: {field}.", param=field)
        start = _int(params["start_time"], "start_time")
        end = _int(params["end_time"], "end_time")
        if end <= start:
            raise invalid("end_time must be after start_time.", param="end_time")
        window = params.get("value_grouping_window")
        step = {"hour": 3600, "day": DAY}.get(str(window), end - start)
        summaries = []
        cursor = start
        n = 0
        while cursor < end:
            stop = min(cursor + step, end)
            summary = example("billing.meter_event_summary")
            value = self._usage(customer["id"], meter_id, cursor, stop)
            summary.update(
                id=new_id("mtrusg_"),
                aggregated_value=float(value) if value != int(value) else int(value),
                start_time=cursor,
                end_time=stop,
                livemode=False,
                meter=meter["id"],
                _seq=-n,
            )
            summaries.append(summary)
            cursor, n = stop, n + 1
        return self._list(summaries, params, f"/v1/billing/meters/{meter_id}/event_summaries")

    def _record_meter_event(self, params: Obj) -> Obj:
        event_name = params.get("event_name")
        if not event_name:
            raise invalid("Missing required param: event_name.", param="event_name")
        payload = params.get("payload")
        if not isinstance(payload, dict):
            raise invalid("Missing required param: payload.", param="payload")
        meter = next(
            (
                m
                for m in self._all("billing.meter")
                if m["event_name"] == event_name and m["status"] == "active"
            ),
            None,
        )
        customer_key = meter["customer_mapping"]["event_payload_key"] if meter else "stripe_customer_id"
        value_key = meter["value_settings"]["event_payload_key"] if meter else "value"
        customer_id = payload.get(customer_key)
        if not customer_id:
            raise invalid(
                f"Missing required param: payload[{customer_key}].", param=f"payload[{customer_key}]"
            )
        raw_value = payload.get(value_key, "1")
        try:
            value = Decimal(str(raw_value))
        except ArithmeticError:
            raise invalid(
                f"Invalid value for payload[{value_key}]: must be a number.", param=f"payload[{value_key}]"
            ) from None
        now = self.now(str(customer_id))
        timestamp = (
            _int(params["timestamp"], "timestamp") if params.get("timestamp") not in (None, "") else now
        )
        if timestamp < now - 35 * DAY:
            raise invalid(
                "Timestamp must be within the past 35 calendar days.",
                param="timestamp",
                code="timestamp_too_far_in_past",
            )
        if timestamp > now + 300:
            raise invalid(
                "Timestamp must not be more than 5 minutes in the future.",
                param="timestamp",
                code="timestamp_in_future",
            )
        identifier = params.get("identifier") or new_id("", 20)
        cutoff = time.time() - METER_IDENTIFIER_TTL
        events = self.state["meter_events"]
        self.state["meter_events"] = events = [
            e for e in events if e["received"] >= cutoff or e["timestamp"] >= now - 40 * DAY
        ]
        for event in events:
            if event["identifier"] == identifier and event["received"] >= cutoff:
                raise ApiError(
                    400,
                    f"An event already exists with identifier {identifier}.",
                    param="identifier",
                    headers={"Stripe-Should-Retry": "false"},
                )
        record = {
            "event_name": event_name,
            "customer": str(customer_id),
            "value": str(value),
            "timestamp": timestamp,
            "identifier": identifier,
            "created": now,
            "received": time.time(),
            "payload": {str(k): str(v) for k, v in payload.items()},
        }
        events.append(record)
        return record

    def meter_event_create(self, params: Obj) -> Obj:
        record = self._record_meter_event(params)
        event = example("billing.meter_event")
        event.update(
            created=record["created"],
            event_name=record["event_name"],
            identifier=record["identifier"],
            livemode=False,
            payload=record["payload"],
            timestamp=record["timestamp"],
        )
        return event

    def meter_event_create_v2(self, params: Obj) -> Obj:
        """``POST /v2/billing/meter_events`` (JSON body, RFC 3339 timestamps)."""
        if isinstance(params.get("timestamp"), str):
            moment = dt.datetime.fromisoformat(params["timestamp"].replace("Z", "+00:00"))
            params = dict(params) | {"timestamp": int(moment.timestamp())}
        record = self._record_meter_event(params)

        iso = self._iso
        return {
            "object": "v2.billing.meter_event",
            "created": iso(record["created"]),
            "event_name": record["event_name"],
            "identifier": record["identifier"],
            "livemode": False,
            "payload": record["payload"],
            "timestamp": iso(record["timestamp"]),
        }

    # --- events -------------------------------------------------------------------------
    def event_list(self, params: Obj) -> Obj:
        objs = self._all("event")
        if params.get("type"):
            pattern = re.compile("^" + re.escape(params["type"]).replace(r"\*", ".*") + "$")
            objs = [e for e in objs if pattern.match(e["type"])]
        if params.get("types"):
            types = set(_as_list(params["types"]))
            objs = [e for e in objs if e["type"] in types]
        objs = self._created_filter(objs, params.get("created"))
        return self._list(objs, params, "/v1/events")

    def event_retrieve(self, params: Obj, event_id: str) -> Obj:
        return self.render(self._get("event", event_id), params.get("expand"))

    # --- webhook endpoints --------------------------------------------------------------
    def webhook_create(self, params: Obj) -> Obj:
        if not params.get("url"):
            raise invalid("Missing required param: url.", param="url")
        events = _as_list(params.get("enabled_events"))
        if not events:
            raise invalid("Missing required param: enabled_events.", param="enabled_events")
        endpoint = example("webhook_endpoint")
        endpoint.update(
            id=new_id("we_"),
            api_version=params.get("api_version") or None,
            created=self.now(),
            description=params.get("description") or None,
            enabled_events=events,
            livemode=False,
            metadata={},
            status="enabled",
            url=params["url"],
            secret="whsec_" + new_id("", 32),
        )
        self._merge_metadata(endpoint, params)
        self._store(endpoint)
        return endpoint | {}

    def _webhook_public(self, endpoint: Obj) -> Obj:
        out = self._public(endpoint)
        out.pop("secret", None)
        return out

    def webhook_list(self, params: Obj) -> Obj:
        result = self._list(self._all("webhook_endpoint"), params, "/v1/webhook_endpoints")
        for entry in result["data"]:
            entry.pop("secret", None)
        return result

    def webhook_retrieve(self, params: Obj, endpoint_id: str) -> Obj:
        return self._webhook_public(self._get("webhook_endpoint", endpoint_id))

    def webhook_update(self, params: Obj, endpoint_id: str) -> Obj:
        endpoint = self._get("webhook_endpoint", endpoint_id)
        if params.get("url"):
            endpoint["url"] = params["url"]
        if params.get("enabled_events"):
            endpoint["enabled_events"] = _as_list(params["enabled_events"])
        if "disabled" in params:
            endpoint["status"] = "disabled" if _bool(params["disabled"]) else "enabled"
        if "description" in params:
            endpoint["description"] = params["description"] or None
        self._merge_metadata(endpoint, params)
        return self._webhook_public(endpoint)

    def webhook_delete(self, params: Obj, endpoint_id: str) -> Obj:
        endpoint = self._get("webhook_endpoint", endpoint_id)
        endpoint["_deleted"] = True
        deleted = example("deleted_webhook_endpoint")
        deleted["id"] = endpoint_id
        return deleted

    # --- test clocks --------------------------------------------------------------------
    def clock_create(self, params: Obj) -> Obj:
        if params.get("frozen_time") in (None, ""):
            raise invalid("Missing required param: frozen_time.", param="frozen_time")
        clock = example("test_helpers.test_clock")
        frozen = _int(params["frozen_time"], "frozen_time")
        clock.update(
            id=new_id("clock_"),
            created=int(time.time()),
            deletes_after=int(time.time()) + 30 * DAY,
            frozen_time=frozen,
            livemode=False,
            name=params.get("name") or None,
            status="ready",
            status_details={},
        )
        self._store(clock)
        self._emit("test_helpers.test_clock.created", clock, at=frozen)
        return self.render(clock)

    def clock_list(self, params: Obj) -> Obj:
        return self._list(self._all("test_helpers.test_clock"), params, "/v1/test_helpers/test_clocks")

    def clock_retrieve(self, params: Obj, clock_id: str) -> Obj:
        return self.render(self._get("test_helpers.test_clock", clock_id))

    def clock_delete(self, params: Obj, clock_id: str) -> Obj:
        clock = self._get("test_helpers.test_clock", clock_id)
        for customer in self._all("customer"):
            if customer["test_clock"] == clock_id:
                for sub in self._all("subscription"):
                    if sub["customer"] == customer["id"]:
                        sub["_deleted"] = True
                customer["_deleted"] = True
        clock["_deleted"] = True
        self._emit("test_helpers.test_clock.deleted", clock, at=int(clock["frozen_time"]))
        deleted = example("deleted_test_helpers.test_clock")
        deleted["id"] = clock_id
        return deleted

    def run_due(self) -> int:
        """Process what is due now for customers without a test clock (renewals, retries...).

        Stripe does this continuously; here ``StripeLocal(tick_interval=...)`` calls it from a
        thread (the standalone server does, every 30 s) or a test calls ``s.run_due()``.
        """
        with self.lock:
            count = 0
            for _ in range(10000):
                due = self._due(None, int(time.time()))
                if due is None:
                    break
                at, kind, obj = due
                self._run(kind, obj, at)
                count += 1
            if count:
                self.save()
            return count

    def clock_advance(self, params: Obj, clock_id: str) -> Obj:
        """Run everything due up to ``frozen_time`` in order; the answer says ``advancing``."""
        clock = self._get("test_helpers.test_clock", clock_id)
        target = _int(params.get("frozen_time"), "frozen_time")
        if target <= int(clock["frozen_time"]):
            raise invalid(
                "The test clock's frozen_time must be after its current frozen_time.", param="frozen_time"
            )
        clock["status"] = "advancing"
        clock["status_details"] = {"advancing": {"target_frozen_time": target}}
        answer = self.render(clock)
        self._emit("test_helpers.test_clock.advancing", clock, at=int(clock["frozen_time"]))
        for _ in range(10000):
            due = self._due(clock_id, target)
            if due is None:
                break
            at, kind, obj = due
            clock["frozen_time"] = max(int(clock["frozen_time"]), at)
            self._run(kind, obj, at)
        clock["frozen_time"] = target
        clock["status"] = "ready"
        clock["status_details"] = {}
        self._emit("test_helpers.test_clock.ready", clock, at=target)
        return answer
