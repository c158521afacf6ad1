"""A ``ModelBackend`` that replays recorded answers: for tests of the pipeline's decisions (fix
loop, JSON repair, refusals) that a random tiny model cannot drive, and for demos without a model.

Each call of ``stream`` takes the next answer of the list and streams it through the real
``ModelBackend`` interface in chunks of ``chunk_chars`` characters, ``chunk_delay`` seconds apart.
Token counts are deterministic: one token per started 4 characters of the prompt (the messages'
contents joined) and of the answer so far; ``finish_reason`` is ``"stop"``. When the list is used
up the call raises ``RecordedAnswersExhausted``: the pipeline asked more than the recording holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from agents.inference.backends import Chunk, Message, ModelBackend


class RecordedAnswersExhausted(RuntimeError):
    pass


@dataclass(frozen=True)
class RecordedAnswer:
    text: str
    #: Called with the index of each chunk just before it is yielded (a test's way to act while
    #: the model "speaks", e.g. to cancel the task mid-stream).
    on_chunk: Callable[[int], None] | None = None


def _tokens(text: str) -> int:
    return (len(text) + 3) // 4


class RecordedBackend(ModelBackend):
    def __init__(
        self, answers: Sequence[str | RecordedAnswer], *, chunk_chars: int = 16, chunk_delay: float = 0.0
    ) -> None:
        self.answers = [a if isinstance(a, RecordedAnswer) else RecordedAnswer(a) for a in answers]
        self.chunk_chars = max(1, chunk_chars)
        self.chunk_delay = chunk_delay
        self.calls: list[list[Message]] = []
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int:
        return len(self.answers) - len(self.calls)

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.0
    ) -> Iterator[Chunk]:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        with self._lock:
            index = len(self.calls)
            if index >= len(self.answers):
                raise RecordedAnswersExhausted(f"only {len(self.answers)} recorded answers")
            self.calls.append(list(messages))
        answer = self.answers[index]
        tokens_in = _tokens("".join(m["content"] for m in messages))
        text = answer.text
        pieces = [text[i : i + self.chunk_chars] for i in range(0, len(text), self.chunk_chars)] or [""]
        written = ""
        for i, piece in enumerate(pieces):
            if answer.on_chunk is not None:
                answer.on_chunk(i)
            if self.chunk_delay:
                time.sleep(self.chunk_delay)
            written += piece
            last = i == len(pieces) - 1
            yield Chunk(
                text=piece,
                tokens_in=tokens_in,
                tokens_out=_tokens(written),
                finish_reason="stop" if last else None,
            )
