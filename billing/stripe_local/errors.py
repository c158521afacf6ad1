"""Stripe's error shape, so the real ``stripe`` library raises its own exception classes."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer in Stripe's error format: ``{"error": {"type", "code", "message", "param"}}``.

    stripe-python picks the exception from the status and body: 400/404 → InvalidRequestError,
    401 → AuthenticationError, 402 → CardError (it reads ``code``, ``param``, ``decline_code``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        if self.decline_code is not None:
            error["decline_code"] = self.decline_code
        return {"error": error}


def missing(kind: str, object_id: str, *, param: str = "id") -> ApiError:
    return ApiError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def card_declined(*, decline_code: str = "generic_decline", param: str | None = None) -> ApiError:
    message = (
        "Your card has insufficient funds."
        if decline_code == "insufficient_funds"
        else "Your card was declined."
    )
    return ApiError(
        402, message, type="card_error", code="card_declined", decline_code=decline_code, param=param
    )
