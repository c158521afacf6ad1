"""The tiny test model and the in-process mlx-lm backend: built offline, loaded offline, streamed
with exact token counts. No database; no network (HF_HUB_OFFLINE=1, and a child process that
refuses every socket proves the load needs none)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from django.core.management import call_command

pytest.importorskip(
    "mlx_lm", reason="mlx-lm is not installed (requirements.txt pins it; the agents worker needs it)"
)

from agents.inference.backends import Chunk, Message, MlxBackend, model_load
from agents.inference.tiny_model import (
    ENDOFTEXT,
    IM_END,
    IM_START,
    VOCAB_SIZE,
    WEIGHTS_FILE,
    folder_size,
    tiny_model_build,
)

START, END = 257, 258  # <|im_start|>, <|im_end|>
MESSAGES: list[Message] = [
    {"role": "system", "content": "You write code."},
    {"role": "user", "content": "héllo ☃, write a test"},
]


def expected_prompt(messages: list[Message]) -> list[int]:
    """ChatML with one token per UTF-8 byte, worked out here rather than by the tokenizer."""
    tokens: list[int] = []
    for message in messages:
        tokens += [START, *f"{message['role']}\n{message['content']}".encode(), END, *b"\n"]
    return [*tokens, START, *b"assistant\n"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_build(tmp_path_factory.mktemp("tiny") / "model")


def test_builds_a_small_qwen2_folder_in_seconds(tmp_path: Path) -> None:
    started = time.perf_counter()
    path = tiny_model_build(tmp_path / "m")
    assert time.perf_counter() - started < 5
    assert {f.name for f in path.iterdir()} >= {
        "config.json",
        WEIGHTS_FILE,
        "tokenizer.json",
        "tokenizer_config.json",
    }
    config = json.loads((path / "config.json").read_text())
    assert (config["model_type"], config["hidden_size"], config["num_hidden_layers"]) == ("qwen2", 64, 2)
    assert config["vocab_size"] == VOCAB_SIZE == 256 + 3
    tokenizer_config = json.loads((path / "tokenizer_config.json").read_text())
    assert tokenizer_config["eos_token"] == IM_END
    assert "<|im_start|>" in tokenizer_config["chat_template"]
    assert folder_size(path) < 1024 * 1024


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    first = tiny_model_build(tmp_path / "a", seed=7)
    second = tiny_model_build(tmp_path / "b", seed=7)
    other = tiny_model_build(tmp_path / "c", seed=8)
    for name in ("config.json", WEIGHTS_FILE, "tokenizer.json", "tokenizer_config.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert (first / WEIGHTS_FILE).read_bytes() != (other / WEIGHTS_FILE).read_bytes()


# Run in a fresh interpreter: huggingface_hub reads HF_HUB_OFFLINE / HF_ENDPOINT when imported, and
# the audit hook makes any socket (DNS included) an error, so a hub call would fail the load.
OFFLINE_LOAD = textwrap.dedent(
    """
    import json, sys

    def no_network(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
            raise RuntimeError(f"network access: {event} {args!r}")

    sys.addaudithook(no_network)
    import mlx_lm

    model, tokenizer = mlx_lm.load(sys.argv[1])
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    text = mlx_lm.generate(model, tokenizer, prompt, max_tokens=16)
    print(json.dumps({"text": text, "eos": sorted(tokenizer.eos_token_ids)}))
    """
)


def test_mlx_lm_loads_it_with_no_network(model_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_LOAD, str(model_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(out["text"]) == 16
    assert out["eos"] == [256, 258]  # <|endoftext|>, <|im_end|>


def test_the_backend_streams_with_exact_token_counts(model_path: Path) -> None:
    backend = MlxBackend(model_path)
    prompt = expected_prompt(MESSAGES)
    assert backend.prompt_tokens(MESSAGES) == prompt

    chunks: list[Chunk] = list(backend.stream(MESSAGES, max_tokens=48))

    assert [chunk.tokens_out for chunk in chunks] == list(range(1, 49))
    assert {chunk.tokens_in for chunk in chunks} == {len(prompt)}
    assert [chunk.finish_reason for chunk in chunks] == [None] * 47 + ["length"]
    text = "".join(chunk.text for chunk in chunks)
    # The tiny model writes one printable ASCII byte per token (tiny_model.py, WRITTEN_TOKENS).
    assert len(text.encode()) == 48
    assert text.isascii() and all(char.isprintable() or char == "\n" for char in text)


def test_complete_collects_the_stream(model_path: Path) -> None:
    backend = MlxBackend(model_path)
    streamed = "".join(chunk.text for chunk in backend.stream(MESSAGES, max_tokens=20))

    completion = backend.complete(MESSAGES, max_tokens=20)

    assert completion.text == streamed  # greedy: the same answer twice
    assert (completion.tokens_in, completion.tokens_out) == (len(expected_prompt(MESSAGES)), 20)
    assert completion.finish_reason == "length"
    assert completion.duration_s > 0


def test_sampling_with_a_temperature(model_path: Path) -> None:
    completion = MlxBackend(model_path).complete(
        [{"role": "user", "content": "hi"}], max_tokens=8, temperature=1.0
    )
    assert completion.tokens_out == 8
    assert ENDOFTEXT not in completion.text and IM_START not in completion.text


def test_a_model_is_loaded_once_per_process(model_path: Path) -> None:
    first = MlxBackend(model_path)
    second = MlxBackend(str(model_path / ".." / model_path.name))
    assert second.loaded is first.loaded
    assert second.loaded.model is first.loaded.model
    assert model_load(model_path).tokenizer is first.loaded.tokenizer


def test_a_missing_folder_is_never_taken_for_a_hub_name(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        MlxBackend(tmp_path / "Qwen" / "Qwen2.5-0.5B")
    with pytest.raises(ValueError):
        next(iter(MlxBackend(tiny_model_build(tmp_path / "m")).stream(MESSAGES, max_tokens=0)))


def test_the_command_builds_it(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("agents_build_tiny_model", path=tmp_path / "cmd", seed=3, stdout=out)
    assert f"written to {(tmp_path / 'cmd').resolve()}" in out.getvalue()
    reference = tiny_model_build(tmp_path / "ref", seed=3)
    assert (tmp_path / "cmd" / WEIGHTS_FILE).read_bytes() == (reference / WEIGHTS_FILE).read_bytes()


def test_the_command_defaults_to_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEANVIBE_DATA_DIR", str(tmp_path))
    call_command("agents_build_tiny_model", stdout=io.StringIO())
    assert (tmp_path / "models" / "tiny-qwen2" / WEIGHTS_FILE).is_file()
