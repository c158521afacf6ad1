"""One interface for running a chat model, and its in-process mlx-lm backend.

``ModelBackend`` is what the agents see: ``stream`` yields the answer in chunks with the token
counts so far, ``complete`` collects it. ``MlxBackend`` runs mlx-lm in the calling process (the
agents worker): a model folder is loaded once per process and shared by every backend made for
it. ``OpenAIBackend`` (agents/inference/openai_backend.py) talks to an OpenAI-compatible server
(``mlx_lm.server``, llama.cpp's server, vLLM) over HTTP.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict

from mlx_lm import load, stream_generate
from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache
from mlx_lm.sample_utils import make_sampler


class Message(TypedDict):
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Chunk:
    """A piece of the answer. ``tokens_in`` is the prompt's length in tokens (the chat template
    applied); ``tokens_out`` counts the tokens generated so far, a stop token included (it was
    computed like the others). ``finish_reason`` is set on the last chunk only: ``"stop"`` (the
    model ended its turn) or ``"length"`` (``max_tokens`` reached)."""

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str
    duration_s: float


class BackendError(RuntimeError):
    """The model could not answer (server down, refused URL, bad answer); the message says why
    in our own words, safe to show to the tenant."""


class ModelBackend(abc.ABC):
    @abc.abstractmethod
    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.0
    ) -> Iterator[Chunk]:
        """The answer to ``messages`` as it is generated; the last chunk has ``finish_reason``."""

    def session(self) -> ModelBackend:
        """A backend for one conversation (one task's steps, each prompt extending the last):
        this backend itself, unless it can keep state between the calls (``MlxBackend``)."""
        return self

    def complete(
        self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.0
    ) -> Completion:
        """The whole answer, its token counts and how long it took."""
        started = time.perf_counter()
        parts: list[str] = []
        last: Chunk | None = None
        for chunk in self.stream(messages, max_tokens=max_tokens, temperature=temperature):
            parts.append(chunk.text)
            last = chunk
        if last is None or last.finish_reason is None:
            raise RuntimeError("The backend's stream ended without a last chunk.")
        return Completion(
            text="".join(parts),
            tokens_in=last.tokens_in,
            tokens_out=last.tokens_out,
            finish_reason=last.finish_reason,
            duration_s=time.perf_counter() - started,
        )


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # mlx.nn.Module
    tokenizer: Any  # mlx_lm.tokenizer_utils.TokenizerWrapper
    path: Path
    load_s: float


_loaded: dict[Path, LoadedModel] = {}
_loading = threading.Lock()


def model_load(path: Path | str) -> LoadedModel:
    """The model in the local folder ``path``, loaded on the first call in this process and then
    shared. A missing folder raises ``FileNotFoundError``: mlx-lm would take it for a hub name."""
    folder = Path(path).resolve()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"No model folder (config.json) at {folder}")
    with _loading:
        if folder not in _loaded:
            started = time.perf_counter()
            model, tokenizer = load(str(folder))[:2]
            _loaded[folder] = LoadedModel(model, tokenizer, folder, time.perf_counter() - started)
        return _loaded[folder]


def models_unload() -> None:
    """Forget every loaded model (tests; a worker that changes models)."""
    with _loading:
        _loaded.clear()


class MlxBackend(ModelBackend):
    """mlx-lm in this process. Generation is not thread-safe: one stream at a time per process,
    which is how a prefork Celery worker runs its tasks."""

    def __init__(self, model_path: Path | str) -> None:
        self.loaded = model_load(model_path)

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The prompt as the model sees it: the chat template applied, ready for the answer."""
        tokens = self.loaded.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True)
        return list(tokens)

    def session(self) -> MlxSession:
        """A backend for one task's conversation that keeps the model's prompt cache (the
        attention keys and values of the tokens already read) between calls: a prompt that
        extends the previous one (the same messages, the answer and a new message appended) is
        read from where the last call stopped instead of from its first token."""
        return MlxSession(self)

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.0
    ) -> Iterator[Chunk]:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        for chunk, _token in self._generate(
            self.prompt_tokens(messages), max_tokens, temperature, cache=None
        ):
            yield chunk

    def _generate(
        self, prompt: list[int], max_tokens: int, temperature: float, *, cache: list[Any] | None
    ) -> Iterator[tuple[Chunk, int]]:
        """Chunks and the id of the token each ends with; with ``cache`` only ``prompt`` is read
        (the cache holds what came before it)."""
        for response in stream_generate(
            self.loaded.model,
            self.loaded.tokenizer,
            prompt,
            max_tokens=max_tokens,
            sampler=make_sampler(temp=temperature),
            prompt_cache=cache,
        ):
            yield (
                Chunk(
                    text=response.text,
                    tokens_in=response.prompt_tokens,
                    tokens_out=response.generation_tokens,
                    finish_reason=response.finish_reason,
                ),
                response.token,
            )


class MlxSession(ModelBackend):
    """``MlxBackend.session()``: one conversation, one prompt cache. Not thread-safe, like the
    backend. ``reused_tokens`` is how many prompt tokens the last call took from the cache;
    ``tokens_in`` is still the whole prompt."""

    def __init__(self, backend: MlxBackend) -> None:
        self.backend = backend
        self.cache: list[Any] = make_prompt_cache(backend.loaded.model)
        self.cached_tokens: list[int] = []  # what the cache holds, in order
        self.reused_tokens = 0

    def reset(self) -> None:
        self.cache = make_prompt_cache(self.backend.loaded.model)
        self.cached_tokens = []

    def _reusable_prefix(self, prompt: list[int]) -> int:
        """How many of ``prompt``'s first tokens the cache can keep (trimmed to that length);
        at least one prompt token is always left to read."""
        common = 0
        for cached, new in zip(self.cached_tokens, prompt, strict=False):
            if cached != new:
                break
            common += 1
        common = min(common, len(prompt) - 1)
        surplus = len(self.cached_tokens) - common
        if surplus > 0:
            if not can_trim_prompt_cache(self.cache):
                self.reset()
                return 0
            trim_prompt_cache(self.cache, surplus)
            self.cached_tokens = self.cached_tokens[:common]
        return common

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.0
    ) -> Iterator[Chunk]:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        prompt = self.backend.prompt_tokens(messages)
        reused = self._reusable_prefix(prompt)
        self.reused_tokens = reused
        generated: list[int] = []
        complete = False
        try:
            for chunk, token in self.backend._generate(
                prompt[reused:], max_tokens, temperature, cache=self.cache
            ):
                generated.append(token)
                yield replace(chunk, tokens_in=len(prompt))
            complete = True
        finally:
            held = _cache_length(self.cache)
            known = [*prompt, *generated]
            if complete and held <= len(known):
                self.cached_tokens = known[:held]
            else:
                self.reset()  # stopped half-way: what the cache holds is not known for sure


def _cache_length(cache: list[Any]) -> int:
    return int(getattr(cache[0], "offset", -1)) if cache else -1
