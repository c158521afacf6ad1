"""The hosted pages: Checkout, the customer portal, and the invoice page and "PDF".

Plain HTML forms, so a browser test or a plain ``urllib`` POST can drive them. Test card numbers
work as on Stripe: 4242424242424242 succeeds, 4000000000000341 attaches but its charges fail,
4000000000000002 is declined (the error is shown inline, status 402).
"""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from .backend import Backend
from .errors import ApiError

Obj = dict[str, Any]
Page = tuple[int, dict[str, str], str]

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}
.error{color:#b00020;border:1px solid #b00020;padding:.5rem;margin:1rem 0}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left}
form{margin:.5rem 0}input[type=text],input[type=email]{padding:.4rem;width:18rem}
button{padding:.4rem .8rem;cursor:pointer}.muted{color:#666;font-size:.9rem}
"""


def _doc(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
        "<p class='muted'>Local Stripe stand-in (test mode)</p></body></html>"
    )


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None:
        return "metered"
    return f"{(currency or 'usd').upper()} {Decimal(amount) / 100:.2f}"


def _form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))


def _not_found() -> Page:
    return 404, {}, _doc("Not found", "<p>This page does not exist or has expired.</p>")


def _redirect(url: str) -> Page:
    return 303, {"Location": url}, ""


# --- checkout -----------------------------------------------------------------------------
def checkout_page(backend: Backend, session_id: str, *, error: str | None = None, status: int = 200) -> Page:
    with backend.lock:
        session = backend.objects.get(session_id)
        if session is None or session.get("object") != "checkout.session":
            return _not_found()
        if session["status"] != "open":
            return 410, {}, _doc("Checkout", "<p>This Checkout Session is no longer available.</p>")
        rows = []
        for spec in session["_items"]:
            price = backend.objects[spec["price"]]
            product = backend.objects.get(price["product"], {})
            interval = (price.get("recurring") or {}).get("interval", "")
            rows.append(
                f"<tr><td>{html.escape(product.get('name', ''))}</td>"
                f"<td>{_money(price['unit_amount'], price['currency'])} / {interval}</td>"
                f"<td>{spec['quantity'] or ''}</td></tr>"
            )
        trial = session["_subscription_data"].get("trial_period_days")
        promo_field = bool(session["allow_promotion_codes"])
        email = session["customer_email"] or ""
        customer = backend.objects.get(session["customer"]) if session["customer"] else None
        if customer:
            email = customer.get("email") or ""
    notice = f"<p>{html.escape(str(trial))}-day free trial.</p>" if trial else ""
    error_html = f"<div class='error' role='alert'>{html.escape(error)}</div>" if error else ""
    body = (
        f"<table><tr><th>Item</th><th>Price</th><th>Qty</th></tr>{''.join(rows)}</table>{notice}"
        f"<p>Total due today: {_money(0 if trial else session['amount_total'], session['currency'])}</p>"
        f"{error_html}"
        f"<form method='post' action='/checkout/{session_id}'>"
        f"<p><label>Email <input type='email' name='email' value='{html.escape(email)}'></label></p>"
        "<p><label>Card number <input type='text' name='card_number' autocomplete='cc-number' "
        "placeholder='4242 4242 4242 4242'></label></p>"
        + (
            "<p><label>Promotion code <input type='text' name='promotion_code'></label></p>"
            if promo_field
            else ""
        )
        + "<p><label>Expiry <input type='text' name='exp' value='12 / 34'></label> "
        "<label>CVC <input type='text' name='cvc' value='123'></label></p>"
        "<button type='submit'>Subscribe</button></form>"
    )
    if session["cancel_url"]:
        body += f"<p><a href='{html.escape(session['cancel_url'])}'>Cancel and go back</a></p>"
    return status, {}, _doc("Checkout", body)


def checkout_submit(backend: Backend, session_id: str, body: bytes) -> Page:
    form = _form(body)
    card = form.get("card_number", "").replace(" ", "")
    try:
        session = backend.checkout_complete(
            session_id,
            card=card,
            email=form.get("email") or None,
            promotion_code=form.get("promotion_code", "").strip() or None,
        )
    except ApiError as exc:
        if exc.status == 404:
            return _not_found()
        return checkout_page(backend, session_id, error=exc.message, status=exc.status)
    url = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
    return _redirect(url)


# --- billing portal -----------------------------------------------------------------------
def _portal_session(backend: Backend, session_id: str) -> Obj | None:
    session = backend.objects.get(session_id)
    if session is None or session.get("object") != "billing_portal.session":
        return None
    return session


def _main_item(backend: Backend, sub: Obj) -> Obj:
    """The item the portal switches: the first with a licensed (not metered) price."""
    items: list[Obj] = sub["items"]["data"]
    for item in items:
        if backend.objects[item["_price"]]["recurring"]["usage_type"] == "licensed":
            return item
    return items[0]


def _switch_options(backend: Backend, features: Obj, current: Obj) -> list[Obj]:
    """Prices the portal offers instead of ``current``: same interval and currency, licensed,
    and (when the configuration lists products) among the configured prices."""
    update = features["subscription_update"]
    if not update.get("enabled"):
        return []
    allowed: set[str] | None = None
    if update.get("products"):
        allowed = {str(price) for product in update["products"] for price in product.get("prices") or []}
    return [
        p
        for p in sorted(backend._all("price"), key=lambda p: p["_seq"])
        if p["active"]
        and p["type"] == "recurring"
        and p["id"] != current["id"]
        and p["recurring"]["interval"] == current["recurring"]["interval"]
        and p["recurring"]["usage_type"] == "licensed"
        and p["currency"] == current["currency"]
        and (allowed is None or p["id"] in allowed)
    ]


def _button(session_id: str, action: str, label: str, **fields: str) -> str:
    hidden = "".join(f"<input type='hidden' name='{k}' value='{html.escape(v)}'>" for k, v in fields.items())
    return (
        f"<form method='post' action='/portal/{session_id}'><input type='hidden' name='action' "
        f"value='{action}'>{hidden}<button type='submit'>{html.escape(label)}</button></form>"
    )


def portal_page(backend: Backend, session_id: str, *, error: str | None = None, status: int = 200) -> Page:
    with backend.lock:
        session = _portal_session(backend, session_id)
        if session is None:
            return _not_found()
        features = backend.portal_features(session["configuration"])
        customer = backend.objects[session["customer"]]
        subs = [
            s
            for s in backend._all("subscription")
            if s["customer"] == customer["id"] and s["status"] not in ("canceled", "incomplete_expired")
        ]
        parts = []
        for sub in sorted(subs, key=lambda s: s["_seq"]):
            current = backend.objects[_main_item(backend, sub)["_price"]]
            product = backend.objects.get(current["product"], {})
            state = sub["status"]
            if sub["cancel_at_period_end"]:
                state += f" (cancels at {sub['cancel_at']})"
            parts.append(
                f"<h2>Subscription {html.escape(sub['id'])}</h2>"
                f"<p>Plan: <strong>{html.escape(product.get('name', ''))}</strong> "
                f"{_money(current['unit_amount'], current['currency'])} / "
                f"{current['recurring']['interval']} — status: "
                f"<span class='status'>{html.escape(state)}</span></p>"
            )
            for price in _switch_options(backend, features, current):
                name = backend.objects.get(price["product"], {}).get("name", "")
                label = f"Switch to {name} ({_money(price['unit_amount'], price['currency'])})"
                parts.append(_button(session_id, "switch", label, subscription=sub["id"], price=price["id"]))
            cancel = features["subscription_cancel"]
            if sub["cancel_at_period_end"]:
                parts.append(_button(session_id, "resume", "Resume subscription", subscription=sub["id"]))
            elif cancel.get("enabled"):
                label = "Cancel now" if cancel.get("mode") == "immediately" else "Cancel at period end"
                parts.append(_button(session_id, "cancel", label, subscription=sub["id"]))
        if features["invoice_history"].get("enabled"):
            invoices = sorted(
                (i for i in backend._all("invoice") if i["customer"] == customer["id"] and i["number"]),
                key=lambda i: -i["_seq"],
            )
            rows = "".join(
                f"<tr><td><a href='{html.escape(i['hosted_invoice_url'] or '')}'>"
                f"{html.escape(i['number'])}</a></td><td>{_money(i['total'], i['currency'])}</td>"
                f"<td>{i['status']}</td></tr>"
                for i in invoices[:24]
            )
            if rows:
                parts.append(f"<h2>Invoices</h2><table class='invoices'>{rows}</table>")
        default_pm = customer["invoice_settings"]["default_payment_method"]
        pm = backend.objects.get(default_pm) if default_pm else None
        card = f"{pm['card']['brand']} •••• {pm['card']['last4']}" if pm else "none"
        return_url = session["return_url"]
        can_update_card = features["payment_method_update"].get("enabled")
    error_html = f"<div class='error' role='alert'>{html.escape(error)}</div>" if error else ""
    body = (
        f"<p>Customer: {html.escape(customer.get('email') or customer['id'])}</p>{error_html}"
        f"{''.join(parts) or '<p>No active subscription.</p>'}"
        f"<h2>Payment method</h2><p>Card: <span class='card'>{html.escape(card)}</span></p>"
    )
    if can_update_card:
        body += (
            f"<form method='post' action='/portal/{session_id}'><input type='hidden' name='action' "
            "value='card'><label>New card number <input type='text' name='card_number'></label> "
            "<button type='submit'>Update card</button></form>"
        )
    if return_url:
        body += f"<p><a id='return' href='{html.escape(return_url)}'>Return to LeanVibe</a></p>"
    return status, {}, _doc("Billing", body)


def portal_submit(backend: Backend, session_id: str, body: bytes) -> Page:
    form = _form(body)
    action = form.get("action")
    try:
        with backend.lock:
            session = _portal_session(backend, session_id)
            if session is None:
                return _not_found()
            features = backend.portal_features(session["configuration"])
            customer = backend.objects[session["customer"]]
            sub: Obj | None = None
            if action in ("switch", "cancel", "resume"):
                sub = backend.objects.get(form.get("subscription", ""))
                if sub is None or sub.get("object") != "subscription" or sub["customer"] != customer["id"]:
                    return portal_page(backend, session_id, error="Unknown subscription.", status=400)
            if action == "switch" and sub is not None:
                item = _main_item(backend, sub)
                current = backend.objects[item["_price"]]
                allowed = {p["id"] for p in _switch_options(backend, features, current)}
                if form.get("price") not in allowed:
                    return portal_page(backend, session_id, error="This plan is not available.", status=400)
                backend.subscription_update(
                    {
                        "items": [{"id": item["id"], "price": form.get("price", "")}],
                        "proration_behavior": features["subscription_update"].get(
                            "proration_behavior", "create_prorations"
                        ),
                    },
                    sub["id"],
                )
            elif action == "cancel" and sub is not None and features["subscription_cancel"].get("enabled"):
                if features["subscription_cancel"].get("mode") == "immediately":
                    backend.subscription_cancel({}, sub["id"])
                else:
                    backend.subscription_update({"cancel_at_period_end": "true"}, sub["id"])
            elif action == "resume" and sub is not None:
                backend.subscription_update({"cancel_at_period_end": "false"}, sub["id"])
            elif action == "card" and features["payment_method_update"].get("enabled"):
                test_pm = backend._test_pm_for(
                    form.get("card_number", "").replace(" ", ""), param="card[number]"
                )
                pm = backend._attach(test_pm, customer)
                backend.customer_update(
                    {"invoice_settings": {"default_payment_method": pm["id"]}}, customer["id"]
                )
            else:
                return portal_page(backend, session_id, error="This action is not available.", status=400)
            backend.save()
    except ApiError as exc:
        return portal_page(backend, session_id, error=exc.message, status=exc.status)
    return _redirect(f"/portal/{session_id}")


# --- invoices -----------------------------------------------------------------------------
def invoice_page(backend: Backend, invoice_id: str, *, pdf: bool = False) -> Page:
    with backend.lock:
        invoice = backend.objects.get(invoice_id)
        if invoice is None or invoice.get("object") != "invoice":
            return _not_found()
        rows = "".join(
            f"<tr><td>{html.escape(line['description'] or '')}</td>"
            f"<td>{_money(line['amount'], line['currency'])}</td></tr>"
            for line in invoice["lines"]["data"]
        )
        body = (
            f"<p>Invoice {html.escape(invoice['number'] or invoice['id'])} — status "
            f"<strong>{invoice['status']}</strong></p><table>{rows}</table>"
            f"<p>Total: {_money(invoice['total'], invoice['currency'])} — amount due: "
            f"{_money(invoice['amount_remaining'], invoice['currency'])}</p>"
        )
    page = _doc("Invoice", body)
    if pdf:
        return 200, {"Content-Type": "application/pdf"}, _tiny_pdf(f"Invoice {invoice_id}")
    return 200, {}, page


def _tiny_pdf(text: str) -> str:
    """A minimal valid one-page PDF, enough for a download link to work."""
    safe = text.replace("(", "").replace(")", "")
    stream = f"BT /F1 18 Tf 72 720 Td ({safe}) Tj ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = "%PDF-1.4\n"
    offsets = []
    for n, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{obj}\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n"
    out += "".join(f"{off:010d} 00000 n \n" for off in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    return out
