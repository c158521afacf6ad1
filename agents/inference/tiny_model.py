"""The tiny test model: a byte-level qwen2 with random weights that mlx-lm loads from a folder.

Hidden size 64, 2 layers, 4 attention heads over 2 key/value heads, a 128-wide MLP; ~108k float32
parameters, about 450 KB on disk, built in about a second. Its vocabulary is the 256 bytes
(GPT-2 byte-level alphabet, no merges: one token per byte) plus the special tokens below, so any
text encodes and every token decodes. It writes nothing meaningful: it is the model for tests and
benchmarks of the plumbing (loading, streaming, token counts), never for quality.

The output head is its own matrix (untied: tied random embeddings make a model that repeats its
last token forever). Its rows are zero except for printable ASCII and the newline, so those
tokens' logits are random while every other token's is exactly 0: greedy decoding only writes
printable ASCII (valid UTF-8, readable in logs) and never a special token, so it never stops
early and a greedy run generates exactly ``max_tokens`` tokens.

transformers 5 loads every ``qwen2`` folder with its own ``Qwen2Tokenizer``, which puts Qwen's
NFC normalizer and split pattern in front of this vocabulary: still one token per byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten
from mlx_lm.models import qwen2
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]  # ids 256, 257, 258
BYTE_TOKENS = 256
VOCAB_SIZE = BYTE_TOKENS + len(SPECIAL_TOKENS)

# The tokens the output head can favour: printable ASCII and the newline.
WRITTEN_TOKENS = frozenset([ord("\n"), *range(ord(" "), ord("~") + 1)])

WEIGHTS_FILE = "model.safetensors"

CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": VOCAB_SIZE,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "bos_token_id": None,
    "eos_token_id": [
        BYTE_TOKENS + SPECIAL_TOKENS.index(IM_END),
        BYTE_TOKENS + SPECIAL_TOKENS.index(ENDOFTEXT),
    ],
}

# The ChatML layout of the Qwen models, without their tool and thinking branches.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def byte_alphabet() -> list[str]:
    """The 256 printable characters that stand for the bytes 0..255 (GPT-2's ``bytes_to_unicode``),
    in byte order: token ``i`` is byte ``i``."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars: dict[int, str] = {b: chr(b) for b in printable}
    shift = 0
    for b in range(BYTE_TOKENS):
        if b not in chars:
            chars[b] = chr(BYTE_TOKENS + shift)
            shift += 1
    return [chars[b] for b in range(BYTE_TOKENS)]


def tokenizer_build() -> Tokenizer:
    """A byte-level BPE tokenizer with no merges (one token per byte) and the special tokens."""
    vocab = {char: i for i, char in enumerate(byte_alphabet())}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer


def _tokenizer_config() -> dict[str, object]:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": CONFIG["max_position_embeddings"],
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": ENDOFTEXT,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": {
            str(BYTE_TOKENS + i): {
                "content": token,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "single_word": False,
                "special": True,
            }
            for i, token in enumerate(SPECIAL_TOKENS)
        },
        "chat_template": CHAT_TEMPLATE,
    }


def _weights(seed: int) -> dict[str, mx.array]:
    """Random weights under the names mlx-lm's qwen2 model declares (taken from the model itself,
    so they always match the installed version). NumPy's generator makes them the same bytes on
    every machine for one seed."""
    args = qwen2.ModelArgs.from_dict(CONFIG)
    parameters = cast("list[tuple[str, mx.array]]", tree_flatten(qwen2.Model(args).parameters()))
    shapes = {name: tuple(value.shape) for name, value in parameters}
    rng = np.random.default_rng(seed)
    weights: dict[str, mx.array] = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name.endswith("norm.weight"):
            value = np.ones(shape, dtype=np.float32)
        elif name.endswith(".bias"):
            value = np.zeros(shape, dtype=np.float32)
        else:
            value = rng.normal(
                0.0, 1.0 if name in ("model.embed_tokens.weight", "lm_head.weight") else 0.02, size=shape
            ).astype(np.float32)
        if name == "lm_head.weight":
            silent = [i for i in range(VOCAB_SIZE) if i not in WRITTEN_TOKENS]
            value[silent] = 0.0  # logit 0: never the greedy choice
        weights[name] = mx.array(value)
    return weights


def tiny_model_build(path: Path, *, seed: int = 0) -> Path:
    """Write the tiny model into ``path`` (created if missing; its files are overwritten) and
    return it. The same seed writes byte-identical files."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(CONFIG, indent=2, sort_keys=True) + "\n")
    mx.save_safetensors(str(path / WEIGHTS_FILE), _weights(seed), metadata={"format": "mlx"})
    tokenizer_build().save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(), indent=2) + "\n")
    (path / "special_tokens_map.json").write_text(
        json.dumps({"eos_token": IM_END, "pad_token": ENDOFTEXT}, indent=2) + "\n"
    )
    return path


def folder_size(path: Path) -> int:
    """Bytes in the files directly inside ``path``."""
    return sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())
