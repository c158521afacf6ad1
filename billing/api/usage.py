"""Usage API: ``POST /api/v1/billing/usage`` and ``GET /api/v1/billing/usage/analytics``."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any, ClassVar

from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Role
from billing import metering, selectors
from leanvibe.api.base import StrictSerializer, TenantAPIView
from leanvibe.parsing import BIGINT_MAX, InvalidValue, bad_parameter, parse_date
from leanvibe.validators import validate_no_control_characters
from tenants.plans import METERED

#: Members read usage; owners and admins record it (as they manage members and settings).
_ADMIN_WRITES: dict[str, Role] = {
    **{method: Role(role) for method, role in TenantAPIView.role_map.items()},
    "POST": Role.ADMIN,
    "PUT": Role.ADMIN,
    "PATCH": Role.ADMIN,
    "DELETE": Role.ADMIN,
}
ANALYTICS_DEFAULT_DAYS = 30
ANALYTICS_MAX_DAYS = 366
METADATA_MAX_BYTES = 4096
#: So that the ledger key, ``<tenant uuid>:api:<key>``, fits a Stripe Meter event identifier (100).
IDEMPOTENCY_KEY_MAX = 50


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: no string, boolean or float is turned into one."""

    default_error_messages = {"invalid": "Expected a whole number (a JSON integer)."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


def _strings_of(value: Any) -> Any:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_of(item)


class MetadataField(serializers.JSONField):
    """A small JSON object PostgreSQL can store (no NUL, no lone surrogate)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected a JSON object.")
        for text in _strings_of(data):
            if "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text):
                raise serializers.ValidationError("Text may not contain NUL or unpaired surrogates.")
        if len(json.dumps(data)) > METADATA_MAX_BYTES:
            raise serializers.ValidationError(f"At most {METADATA_MAX_BYTES} bytes of JSON.")
        return data


class UsageRecordInput(StrictSerializer):
    metric_name = serializers.ChoiceField(
        choices=list(METERED),
        error_messages={
            "invalid_choice": (
                f"Unknown metric {{input}}: one of {', '.join(METERED)} (storage and seats are "
                "measured by the platform, not posted)."
            )
        },
    )
    quantity = StrictIntegerField(min_value=1, max_value=BIGINT_MAX)
    metadata = MetadataField(required=False, default=dict)
    idempotency_key = serializers.CharField(
        max_length=IDEMPOTENCY_KEY_MAX,
        required=False,
        trim_whitespace=False,
        validators=[validate_no_control_characters],
    )

    def validate_idempotency_key(self, value: str) -> str:
        if any("\ud800" <= ch <= "\udfff" for ch in value):
            raise serializers.ValidationError("Unpaired surrogates are not allowed.")
        return value


class UsageRecordApi(TenantAPIView):
    """Record usage of a metered metric; durable (ledger row and period count) when answered."""

    role_map: ClassVar[dict[str, Role]] = _ADMIN_WRITES

    def post(self, request: Request) -> Response:
        data = UsageRecordInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        answer = metering.usage_ledger_record(
            tenant=request.tenant,  # type: ignore[attr-defined]
            metric=values["metric_name"],
            quantity=values["quantity"],
            metadata=values["metadata"],
            idempotency_key=values.get("idempotency_key"),
        )
        if answer.created:
            return Response(answer.body, status=status.HTTP_201_CREATED)
        return Response(answer.body, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"})


def _date_parameter(request: Request, name: str, default: date) -> date:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_date(raw)
    except InvalidValue as exc:
        raise bad_parameter(name, exc) from None


class UsageAnalyticsApi(TenantAPIView):
    """Usage per metric and day from the ledger, with the not yet flushed counts."""

    def get(self, request: Request) -> Response:
        today = timezone.now().date()
        end = _date_parameter(request, "end_date", today)
        start = _date_parameter(request, "start_date", end - timedelta(days=ANALYTICS_DEFAULT_DAYS - 1))
        if start > end:
            raise bad_parameter("start_date", "Must not be after end_date.")
        if (end - start).days + 1 > ANALYTICS_MAX_DAYS:
            raise bad_parameter("start_date", f"The range may cover at most {ANALYTICS_MAX_DAYS} days.")
        return Response(
            selectors.usage_analytics(tenant=request.tenant, start=start, end=end)  # type: ignore[attr-defined]
        )
