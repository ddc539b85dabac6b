"""The built-in tiny model: a byte-level BPE tokenizer and a small Qwen2 causal LM, built
deterministically on this machine with no download.

Tests, the demo and CI use it; it stands in for Qwen2.5-32B-Instruct with the same
architecture, chat template and delimiters, so every code path (training, vLLM, the
transformers engine) is the one real models take.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from thinkube.constants import ENV_CACHE

log = logging.getLogger(__name__)

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
# Qwen3-style tag delimiters, as single added tokens, for models configured with them.
THINK_TAGS = ("<think>", "</think>")
DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

# Qwen2.5's chat template layout (system default, im_start/im_end turns); render_prompt in
# formats/chat.py produces the same text, which a test checks.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of the tiny model. head_dim = hidden_size / num_attention_heads must be >= 32 for vLLM."""

    max_vocab_size: int = 1024  # BPE merges stop earlier when the corpus runs out of pairs
    vocab_multiple: int = 64  # embedding rows padded past the tokenizer, as in Qwen (151,665 -> 152,064)
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 4096
    seed: int = 0
    format_version: int = 2  # bump when the build recipe changes, so caches rebuild

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def _corpus() -> list[str]:
    """Deterministic training text: the chat/delimiter vocabulary, numbers, arithmetic and
    everyday English, so that reasoning-trace text tokenizes into sensible pieces."""
    words = (
        "think answer Answer Final Wait Alternatively Hmm So Let the a an of to is and in that "
        "we it for on with as are this be by step first then next finally sum total add plus "
        "minus times divided equals result check verify therefore because number numbers value "
        "question solve solution compute running carry digit digits remainder product difference "
        "system user assistant You are Qwen created by Alibaba Cloud helpful boxed frac sqrt "
        "left right cdot pi theta x y z n k m prime even odd multiple factor square cube "
        "probability triangle circle angle area length point line"
    ).split()
    lines = [" ".join(words)]
    for i in range(400):
        a, b = (i * 37) % 1000, (i * 91 + 7) % 1000
        lines.append(f"Step {i % 9 + 1}: {a} + {b} = {a + b}. Wait, check: {a + b} - {b} = {a}.")
        lines.append(f"{a} * {i % 13} = {a * (i % 13)}; so the answer is \\boxed{{{a + b}}}.")
        w = words[i % len(words)]
        lines.append(f"{IM_START}think\n{w} {words[(i * 7) % len(words)]}\n{IM_START}answer\nAnswer: {a}{IM_END}")
    return lines


def build_tokenizer(spec: TinyModelSpec = TinyModelSpec()):
    """Train a byte-level BPE with Qwen2's pre-tokenizer and wrap it as a Qwen2Tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import AddedToken, Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    # The same pre-tokenizer Qwen2Tokenizer rebuilds on load: encodings survive a reload.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.max_vocab_size - 5,  # room for the special and added tokens below
        special_tokens=[ENDOFTEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    # merges go to tokenizers' BPE, which takes (a, b) pairs; transformers annotates them as strings.
    qtok = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=merges,  # type: ignore[arg-type]
        chat_template=CHAT_TEMPLATE,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        model_max_length=spec.max_position_embeddings,
    )
    qtok.add_special_tokens({"additional_special_tokens": [IM_START, IM_END]})
    qtok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TAGS])
    return qtok


def build_model(tokenizer, spec: TinyModelSpec = TinyModelSpec()):
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    # head_dim is not among Qwen2Config's parameters: it keeps it as an attribute, which Qwen2's attention reads.
    config = Qwen2Config(  # type: ignore[call-arg]
        # Padded rows are ids no tokenizer text maps to: engines must guard against them.
        vocab_size=-(-len(tokenizer) // spec.vocab_multiple) * spec.vocab_multiple,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        dtype="float32",
    )
    torch.manual_seed(spec.seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[config.eos_token_id, config.pad_token_id],
        pad_token_id=config.pad_token_id,
        do_sample=False,
    )
    return model


def cache_root() -> Path:
    return Path(os.environ.get(ENV_CACHE, Path.home() / ".cache" / "thinkube"))


def tiny_model_path(spec: TinyModelSpec = TinyModelSpec()) -> Path:
    return cache_root() / "models" / f"tiny-qwen2-{spec.key()}"


def ensure_tiny_model(spec: TinyModelSpec = TinyModelSpec(), force: bool = False) -> Path:
    """Build the tiny model into the cache once; later calls return the cached folder."""
    target = tiny_model_path(spec)
    if target.exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes 0700; pods running as another user read the cache
    try:
        tokenizer = build_tokenizer(spec)
        tokenizer.save_pretrained(tmp)
        build_model(tokenizer, spec).save_pretrained(tmp)
        (tmp / "thinkube-tiny.json").write_text(json.dumps(asdict(spec), indent=2))
        if force:
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)  # atomic: a half-written model is never picked up
        except OSError:
            if not target.exists():
                raise
            # another process finished first; its build is identical (deterministic)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("tiny model ready at %s", target)
    return target
