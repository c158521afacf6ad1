"""The ``ModelBackend`` of an Agent profile: the default of setting ``AGENTS_BACKEND_FACTORY``,
which the worker calls for every task it runs (tests point the setting at their own factory)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from agents.inference.backends import MlxBackend, ModelBackend
from agents.inference.openai_backend import OpenAIBackend

if TYPE_CHECKING:
    from agents.models import Agent


class BackendUnavailable(Exception):
    """The profile's backend cannot be built (missing model folder, backend not implemented)."""


def backend_for_agent(agent: Agent) -> ModelBackend:
    if agent.backend == "mlx":
        try:
            return MlxBackend(agent.model)
        except FileNotFoundError as exc:
            raise BackendUnavailable(str(exc)) from exc
    if agent.backend == "http":
        # Through leanvibe.outbound's guard (OpenAIBackend), whoever configured the URL.
        base_url = agent.base_url or settings.AGENTS_INFERENCE_URL
        if not base_url:
            raise BackendUnavailable(
                "no inference server URL (the profile's base URL or AGENTS_INFERENCE_URL)"
            )
        return OpenAIBackend(base_url, model=agent.model or None)
    raise BackendUnavailable(f"backend {agent.backend!r} is not available")
