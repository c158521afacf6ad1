"""Decoding Stripe's request parameters: form bodies and query strings in bracket notation.

stripe-python encodes nested parameters as ``items[0][price]=p``, ``expand[0]=x``,
``metadata[plan]=pro`` and booleans as ``true``/``false`` (``stripe/_encode.py``). They are
turned back into dicts and lists here so handlers read ``params["items"][0]["price"]``.
Values stay strings; handlers convert them where a number or a boolean is meant, as Stripe does.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

_TOKEN = re.compile(r"\[([^\]]*)\]")

# Under these keys digit-only keys are map keys, not list indexes.
_MAP_KEYS = {"metadata", "payload"}


def _split(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    parts = [head]
    if rest:
        parts.extend(_TOKEN.findall("[" + rest))
    return parts


def _listify(value: Any, *, parent: str = "") -> Any:
    if isinstance(value, dict):
        converted = {k: _listify(v, parent=k) for k, v in value.items()}
        if converted and parent not in _MAP_KEYS and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    if isinstance(value, list):
        return [_listify(v) for v in value]
    return value


def decode_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Nest ``(key, value)`` pairs written in bracket notation."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = _split(key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # ``expand[]=x``: append to a list
                continue
            nxt_empty = not last and parts[i + 1] == ""
            if last or (nxt_empty and i + 1 == len(parts) - 1):
                if nxt_empty:
                    node.setdefault(part, {})
                    bucket = node[part]
                    bucket[str(len(bucket))] = value
                else:
                    node[part] = value
                break
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # a scalar given, then a nested key: keep the nested
                node = {}
    result: dict[str, Any] = _listify(root)
    return result


def decode_form(body: str) -> dict[str, Any]:
    return decode_pairs(parse_qsl(body, keep_blank_values=True))


def decode_body(body: bytes, content_type: str) -> dict[str, Any]:
    """Form bodies (v1) and JSON bodies (v2) both become one dict."""
    if not body:
        return {}
    if "json" in content_type:
        data = json.loads(body)
        return data if isinstance(data, dict) else {}
    return decode_form(body.decode("utf-8"))
