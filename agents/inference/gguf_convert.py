"""A llama GGUF file (llama.cpp's format) turned into a model folder that mlx-lm loads.

``mx.load(path, return_metadata=True)`` reads the file: its tensors, with Q4_0, Q4_1 and Q8_0
weights already in mlx's affine quantized form (``weight`` packed in uint32, ``scales``,
``biases``, one scale and bias per block of 32 values), and its metadata (shape of the model,
vocabulary, merges, special tokens, chat template). This module writes what mlx-lm's ``load``
expects instead:

- ``model.safetensors``: the tensors under Hugging Face llama names (``blk.3.attn_q.weight`` ->
  ``model.layers.3.self_attn.q_proj.weight``). The quantized triples are kept as they are.
- ``config.json``: the llama shape from the ``llama.*`` keys, ``"quantization"`` with the bits and
  group size read from the tensors (a tensor quantized differently from the rest gets its own
  entry; mlx-lm also infers it from the shapes), the embedding tied to the output head when the
  file has no ``output.weight``, and ``rope_traditional: true``: llama.cpp's converter permutes the
  query and key rows so that rotary embedding pairs adjacent values, which is mlx's "traditional"
  rope, so the rows are used as they are.
- ``tokenizer.json``: a GPT-2 byte-level BPE rebuilt with the ``tokenizers`` library from the
  vocabulary and merges, the control tokens (GGUF token type 3) as special tokens.
- ``tokenizer_config.json`` and ``special_tokens_map.json``: the chat template, the end-of-turn
  token, and no BOS (``tokenizer.ggml.add_bos_token``).

Only what SmolLM2 and other small llama GGUFs use is supported: the ``llama`` architecture and
the ``gpt2`` tokenizer model; anything else raises ``GGUFConversionError``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import mlx.core as mx
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

WEIGHTS_FILE = "model.safetensors"
GGUF_BLOCK = 32  # values per scale/bias in Q4_0, Q4_1 and Q8_0
CONTROL_TOKEN = 3  # llama.cpp's token type for special tokens (1 is a normal token)

# Per-layer tensors: GGUF name -> Hugging Face llama name (inside ``model.layers.N.``).
_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_norm": "input_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "ffn_norm": "post_attention_layernorm",
}
_MODEL_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
_PARTS = ("weight", "scales", "biases", "bias")
_LAYER = re.compile(r"blk\.(\d+)\.(\w+)\.(\w+)")

# GPT-2's pre-tokenizer split as SmolLM's tokenizer.json has it (llama.cpp pre-type "smollm"):
# each digit alone, then the byte-level regex.
_SPLIT_DIGITS = pre_tokenizers.Digits(individual_digits=True)

Progress = Callable[[int, int], None]


class GGUFConversionError(ValueError):
    """The GGUF file is not one this converter knows how to turn into an mlx-lm folder."""


def hf_tensor_name(gguf_name: str) -> str:
    """The Hugging Face llama name of a GGUF tensor: ``blk.0.attn_q.scales`` ->
    ``model.layers.0.self_attn.q_proj.scales``, ``token_embd.weight`` ->
    ``model.embed_tokens.weight``. Raises ``GGUFConversionError`` for a name it does not know
    (rather than writing a tensor mlx-lm would ignore)."""
    if match := _LAYER.fullmatch(gguf_name):
        index, module, part = match.groups()
        if module in _LAYER_NAMES and part in _PARTS:
            return f"model.layers.{index}.{_LAYER_NAMES[module]}.{part}"
    else:
        module, _, part = gguf_name.rpartition(".")
        if module in _MODEL_NAMES and part in _PARTS:
            return f"{_MODEL_NAMES[module]}.{part}"
    raise GGUFConversionError(f"Unknown GGUF tensor name: {gguf_name}")


def _scalar(metadata: Mapping[str, Any], key: str, default: Any = None) -> Any:
    if key not in metadata:
        if default is None:
            raise GGUFConversionError(f"The GGUF metadata has no {key}")
        return default
    value = metadata[key]
    return value.item() if isinstance(value, mx.array) else value


def _bits(weights: Mapping[str, mx.array], module: str) -> int | None:
    """The bits per value of a quantized GGUF tensor (None when it is not quantized)."""
    if f"{module}.scales" not in weights:
        return None
    packed, scales = weights[f"{module}.weight"], weights[f"{module}.scales"]
    # Each uint32 packs 32 / bits values; each scale covers GGUF_BLOCK values.
    return int(packed.shape[-1] * 32 // (scales.shape[-1] * GGUF_BLOCK))


def quantization_config(weights: Mapping[str, mx.array]) -> dict[str, Any] | None:
    """mlx-lm's ``"quantization"`` entry: the most common bits as the default, and a per-module
    entry (Hugging Face name) for a tensor quantized with other bits or not at all."""
    modules = sorted({name.rpartition(".")[0] for name in weights if name.endswith(".weight")})
    bits = {module: _bits(weights, module) for module in modules}
    counted = Counter(b for b in bits.values() if b is not None)
    if not counted:
        return None
    default = counted.most_common(1)[0][0]
    config: dict[str, Any] = {"group_size": GGUF_BLOCK, "bits": default}
    for module, module_bits in bits.items():
        if module_bits is not None and module_bits != default:
            config[hf_tensor_name(f"{module}.weight").rpartition(".")[0]] = {
                "group_size": GGUF_BLOCK,
                "bits": module_bits,
            }
    return config


def model_config(metadata: Mapping[str, Any], weights: Mapping[str, mx.array]) -> dict[str, Any]:
    """``config.json`` for mlx-lm's llama model."""
    architecture = _scalar(metadata, "general.architecture")
    if architecture != "llama":
        raise GGUFConversionError(f"Only llama GGUF files are supported, not {architecture!r}")
    heads = int(_scalar(metadata, "llama.attention.head_count"))
    hidden = int(_scalar(metadata, "llama.embedding_length"))
    vocab_size = int(_scalar(metadata, "llama.vocab_size", len(metadata["tokenizer.ggml.tokens"])))
    eos = int(_scalar(metadata, "tokenizer.ggml.eos_token_id"))
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": int(_scalar(metadata, "llama.block_count")),
        "intermediate_size": int(_scalar(metadata, "llama.feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(_scalar(metadata, "llama.attention.head_count_kv", heads)),
        "head_dim": int(_scalar(metadata, "llama.rope.dimension_count", hidden // heads)),
        "rms_norm_eps": float(_scalar(metadata, "llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(_scalar(metadata, "llama.rope.freq_base", 10000.0)),
        "rope_traditional": True,
        "max_position_embeddings": int(_scalar(metadata, "llama.context_length", 2048)),
        "vocab_size": vocab_size,
        "tie_word_embeddings": "output.weight" not in weights,
        "bos_token_id": int(_scalar(metadata, "tokenizer.ggml.bos_token_id", -1)),
        "eos_token_id": eos,
    }
    if config["bos_token_id"] < 0:
        config["bos_token_id"] = None
    if (quantization := quantization_config(weights)) is not None:
        config["quantization"] = quantization
    return config


def _tokens(metadata: Mapping[str, Any]) -> tuple[list[str], list[int]]:
    if _scalar(metadata, "tokenizer.ggml.model") != "gpt2":
        raise GGUFConversionError(
            "Only GPT-2 byte-level BPE tokenizers (tokenizer.ggml.model gpt2) are supported"
        )
    tokens = list(metadata["tokenizer.ggml.tokens"])
    types = metadata.get("tokenizer.ggml.token_type")
    token_types = (
        [int(t) for t in cast("list[int]", types.tolist())]
        if isinstance(types, mx.array)
        else [1] * len(tokens)
    )
    return tokens, token_types


def special_tokens(metadata: Mapping[str, Any]) -> list[str]:
    """The control tokens, in id order."""
    tokens, token_types = _tokens(metadata)
    return [token for token, kind in zip(tokens, token_types, strict=True) if kind == CONTROL_TOKEN]


def tokenizer_build(metadata: Mapping[str, Any]) -> Tokenizer:
    """The byte-level BPE tokenizer of a GGUF file's ``tokenizer.ggml.*`` metadata."""
    tokens, token_types = _tokens(metadata)
    vocab = {token: index for index, token in enumerate(tokens)}
    merges = [tuple(merge.split(" ", 1)) for merge in metadata.get("tokenizer.ggml.merges", [])]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.pre_tokenizer = (
        pre_tokenizers.Sequence([_SPLIT_DIGITS, byte_level])
        if _scalar(metadata, "tokenizer.ggml.pre", "") == "smollm"
        else byte_level
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [
            AddedToken(token, special=True, normalized=False)
            for token, kind in zip(tokens, token_types, strict=True)
            if kind == CONTROL_TOKEN
        ]
    )
    return tokenizer


def tokenizer_config(metadata: Mapping[str, Any]) -> dict[str, Any]:
    tokens, token_types = _tokens(metadata)

    def token(key: str) -> str | None:
        index = int(_scalar(metadata, key, -1))
        return tokens[index] if 0 <= index < len(tokens) else None

    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": int(_scalar(metadata, "llama.context_length", 2048)),
        "add_bos_token": bool(_scalar(metadata, "tokenizer.ggml.add_bos_token", False)),
        "bos_token": token("tokenizer.ggml.bos_token_id"),
        "eos_token": token("tokenizer.ggml.eos_token_id"),
        "pad_token": token("tokenizer.ggml.padding_token_id"),
        "unk_token": token("tokenizer.ggml.unknown_token_id"),
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": {
            str(index): {
                "content": content,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "single_word": False,
                "special": True,
            }
            for index, (content, kind) in enumerate(zip(tokens, token_types, strict=True))
            if kind == CONTROL_TOKEN
        },
        "chat_template": _scalar(metadata, "tokenizer.chat_template", ""),
    }


def gguf_convert(gguf_path: Path, folder: Path, *, progress: Progress | None = None) -> Path:
    """Write the mlx-lm folder of the llama GGUF file ``gguf_path`` into ``folder`` (created;
    its files overwritten) and return it. ``progress(done, total)`` is called as tensors are
    renamed and once the files are written."""
    loaded = mx.load(str(gguf_path), return_metadata=True)
    if not (isinstance(loaded, tuple) and isinstance(loaded[0], dict)):
        raise GGUFConversionError(f"{gguf_path} is not a GGUF file mlx can read")
    gguf_weights, metadata = cast("tuple[dict[str, mx.array], dict[str, Any]]", loaded)
    total = len(gguf_weights) + 1
    config = model_config(metadata, gguf_weights)
    weights: dict[str, mx.array] = {}
    for done, name in enumerate(sorted(gguf_weights), start=1):
        weights[hf_tensor_name(name)] = gguf_weights[name]
        if progress is not None and done % 32 == 0:
            progress(done, total)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(folder / WEIGHTS_FILE), weights, metadata={"format": "mlx"})
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer_build(metadata).save(str(folder / "tokenizer.json"))
    tokenizer_settings = tokenizer_config(metadata)
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_settings, indent=2) + "\n")
    special_map = {
        key: tokenizer_settings[key]
        for key in ("bos_token", "eos_token", "pad_token", "unk_token")
        if tokenizer_settings[key] is not None
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")
    if progress is not None:
        progress(total, total)
    return folder
