"""A model behind an OpenAI-compatible HTTP server: ``POST {base_url}/v1/chat/completions``.

Streamed (``"stream": true``): the answer arrives as server-sent events, one ``data: {json}``
line per piece and ``data: [DONE]`` at the end. ``stream_options.include_usage`` asks for a last
event with the exact token counts (``usage``), which ``mlx_lm.server``, llama.cpp's server and
vLLM send; from a server that does not, ``tokens_in`` stays 0 and ``tokens_out`` counts the
pieces received (one per token with those servers).

No ``model`` field is sent unless one is configured: ``mlx_lm.server`` serves its ``--model`` for
a request without one, and takes any other name for a Hugging Face repository to download.

The base URL may be a tenant's choice, so every request goes through the outbound guard
(``leanvibe.outbound.outbound_stream``): https to public addresses only, unless
``OUTBOUND_ALLOW_PRIVATE`` (development, tests) or ``OUTBOUND_ALLOWED_NETWORKS``. Every failure is
a ``BackendError``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from django.conf import settings

from agents.inference.backends import BackendError, Chunk, Message, ModelBackend
from leanvibe.outbound import OutboundError, OutboundRefused, outbound_stream

logger = logging.getLogger(__name__)

PURPOSE = "agent model server"
CHAT_PATH = "/v1/chat/completions"
_ERROR_BODY_BYTES = 300


class OpenAIBackend(ModelBackend):
    """``base_url`` is the server's root (``http://127.0.0.1:8080``), without ``/v1``.
    ``timeout`` (default ``AGENTS_BACKEND_TIMEOUT``) bounds connecting and waiting for the answer
    to start, then the silence between two pieces."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = float(timeout if timeout is not None else settings.AGENTS_BACKEND_TIMEOUT)

    @property
    def url(self) -> str:
        return self.base_url + CHAT_PATH

    def request_body(
        self, messages: Sequence[Message], *, max_tokens: int, temperature: float
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.model:
            body["model"] = self.model
        return body

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.0
    ) -> Iterator[Chunk]:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = json.dumps(self.request_body(messages, max_tokens=max_tokens, temperature=temperature))
        try:
            with outbound_stream(
                method="POST",
                url=self.url,
                purpose=PURPOSE,
                headers=headers,
                body=body.encode(),
                timeout=self.timeout,
                idle_timeout=self.timeout,
            ) as answer:
                if answer.status != 200:
                    detail = answer.read()[:_ERROR_BODY_BYTES].decode(errors="replace").strip()
                    logger.warning("model server %s answered %s: %s", self.base_url, answer.status, detail)
                    raise BackendError(f"The model server answered HTTP {answer.status}: {detail}")
                yield from self._chunks(answer.lines())
        except OutboundRefused as exc:
            raise BackendError(f"The model server's address is refused: {exc.reason}.") from exc
        except OutboundError as exc:
            raise BackendError(f"The model server could not be used: {exc.reason}.") from exc

    def _chunks(self, lines: Iterator[bytes]) -> Iterator[Chunk]:
        tokens_in = 0
        tokens_out = 0
        usage_out: int | None = None
        finish_reason: str | None = None
        held_text = ""  # the text of the piece that carried finish_reason, sent with the counts
        for line in lines:
            if not line.startswith(b"data:"):
                continue  # blank separators, comments (": keep-alive"), event: and id: fields
            payload = line[len(b"data:") :].strip()
            if payload == b"[DONE]":
                break
            event = _event(payload)
            if isinstance(event.get("error"), dict | str):
                raise BackendError(f"The model server reported an error: {_error_text(event['error'])}")
            usage = event.get("usage")
            if isinstance(usage, dict):
                tokens_in = int(usage.get("prompt_tokens") or 0)
                usage_out = int(usage.get("completion_tokens") or 0)
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                text = delta.get("content") or ""
                if text:
                    tokens_out += 1
                if choice.get("finish_reason"):
                    finish_reason = str(choice["finish_reason"])
                    held_text += text
                elif text and finish_reason is None:
                    yield Chunk(text=text, tokens_in=tokens_in, tokens_out=tokens_out)
                elif text:
                    held_text += text
        if finish_reason is None:
            raise BackendError("The model server's answer ended before it was complete.")
        yield Chunk(
            text=held_text,
            tokens_in=tokens_in,
            tokens_out=usage_out if usage_out is not None else tokens_out,
            finish_reason=finish_reason,
        )


def _event(payload: bytes) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise BackendError("The model server sent a piece of its answer that is not JSON.") from exc
    if not isinstance(event, dict):
        raise BackendError("The model server sent a piece of its answer that is not a JSON object.")
    return event


def _error_text(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)[:_ERROR_BODY_BYTES]
    return str(error)[:_ERROR_BODY_BYTES]
