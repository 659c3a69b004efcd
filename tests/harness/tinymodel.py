"""Build a tiny random-weight Llama checkpoint that real engines load (nothing from a hub).

    python -m tests.harness.tinymodel DIR        # with a Python that has numpy,
                                                  # safetensors and tokenizers

The checkpoint has what a real one has, so the engine's real loading code
runs: ``config.json`` (LlamaForCausalLM, head_dim 64: CPU attention refuses
16), a byte-level BPE tokenizer trained here on a few sentences, a chat
template, ``generation_config.json``, and the weights in several safetensors
shards with ``model.safetensors.index.json``. Two layers, so a pipeline of two
stages gets one layer each. About 3 MB; built in about a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HIDDEN = 128
HEADS = 2            # head_dim = HIDDEN / HEADS = 64
LAYERS = 2
INTERMEDIATE = 256
VOCAB = 512
MAX_POSITIONS = 2048
SHARDS = 3

# Jinja chat template in the usual role-marker shape; Open WebUI and the
# engines' chat endpoints render it.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_CORPUS = [
    "llmfab deploys large language models on GPU clusters.",
    "The head node starts first; workers join it over the cluster network.",
    "Every step probes the node and changes only what differs.",
    "Hello! How can I help you today? Say hello to the cluster.",
    "The quick brown fox jumps over the lazy dog, again and again.",
    "Tensor parallel and pipeline parallel stages share the work.",
]


def train_tokenizer(out: Path) -> int:
    """Train a byte-level BPE tokenizer on the corpus; return its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<s>", "</s>", "<pad>"]
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(_CORPUS * 20, trainer=trainer)
    tokenizer.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "pad_token": "<pad>", "model_max_length": MAX_POSITIONS, "add_bos_token": False,
        "chat_template": CHAT_TEMPLATE,
    }, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}, indent=2))
    return tokenizer.get_vocab_size()


def write_config(out: Path, vocab: int) -> None:
    """config.json and generation_config.json of a Llama-shaped model."""
    (out / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": HIDDEN, "num_attention_heads": HEADS, "num_key_value_heads": HEADS,
        "head_dim": HIDDEN // HEADS, "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS, "vocab_size": vocab,
        "max_position_embeddings": MAX_POSITIONS, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2,
        "torch_dtype": "float32",
    }, indent=2))
    (out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}, indent=2))


def weights(vocab: int, seed: int = 0) -> dict:
    """Every tensor of the model, random, in the names transformers' Llama uses."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def rand(*shape: int):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    tensors = {"model.embed_tokens.weight": rand(vocab, HIDDEN),
               "model.norm.weight": np.ones(HIDDEN, np.float32),
               "lm_head.weight": rand(vocab, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors[p + f"self_attn.{name}.weight"] = rand(HIDDEN, HIDDEN)
        tensors[p + "mlp.gate_proj.weight"] = rand(INTERMEDIATE, HIDDEN)
        tensors[p + "mlp.up_proj.weight"] = rand(INTERMEDIATE, HIDDEN)
        tensors[p + "mlp.down_proj.weight"] = rand(HIDDEN, INTERMEDIATE)
        tensors[p + "input_layernorm.weight"] = np.ones(HIDDEN, np.float32)
        tensors[p + "post_attention_layernorm.weight"] = np.ones(HIDDEN, np.float32)
    return tensors


def write_shards(out: Path, tensors: dict, shards: int = SHARDS) -> None:
    """Split the tensors over ``shards`` safetensors files and write the index."""
    from safetensors.numpy import save_file

    names = sorted(tensors)
    weight_map, total = {}, 0
    for i in range(shards):
        part = names[i::shards]
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: tensors[n] for n in part}, str(out / file), metadata={"format": "pt"})
        weight_map.update({n: file for n in part})
        total += sum(tensors[n].nbytes for n in part)
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2, sort_keys=True))


def build(out: Path) -> Path:
    """Write the whole checkpoint into ``out`` (created); return it."""
    out.mkdir(parents=True, exist_ok=True)
    vocab = train_tokenizer(out)
    write_config(out, vocab)
    write_shards(out, weights(vocab))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.tinymodel",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="where to write the checkpoint")
    print(build(parser.parse_args(argv).dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
