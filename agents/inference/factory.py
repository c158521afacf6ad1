"""The ``ModelBackend`` of an Agent profile: the default of setting ``AGENTS_BACKEND_FACTORY``,
which the worker calls for every task it runs (tests point the setting at their own factory)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents.inference.backends import MlxBackend, ModelBackend

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
    # The OpenAI-compatible HTTP backend (through leanvibe.outbound) is not written yet.
    raise BackendUnavailable(f"backend {agent.backend!r} is not available yet")
