"""The built-in tiny model: deterministic, reloadable, shaped like Qwen2 for every engine."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from thinkube.workloads.tiny_model import (
    ENDOFTEXT,
    IM_END,
    IM_START,
    THINK_TAGS,
    TinyModelSpec,
    build_model,
    build_tokenizer,
    ensure_tiny_model,
)

TRICKY = [
    "<|im_start|>think\nLet 12 + 345 = 357. Wait, check: 357 - 345 = 12.\n<|im_start|>answer\nAnswer: \\boxed{357}<|im_end|>",
    "unicode ünïcödé, 数学, emoji 😀 and tabs\tand  double  spaces\r\n",
    "<think>short</think> Final Answer: $\\frac{1}{2}$",
    "",
]


@pytest.fixture(scope="module")
def tiny_path():
    return ensure_tiny_model()


def test_tokenizer_build_is_deterministic():
    a, b = build_tokenizer(), build_tokenizer()
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()


def test_model_build_is_deterministic_and_seeded():
    tok = build_tokenizer()
    a, b = build_model(tok).state_dict(), build_model(tok).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = build_model(tok, TinyModelSpec(seed=1)).state_dict()
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])


def test_reload_gives_identical_tokenization(tiny_path):
    built, loaded = build_tokenizer(), AutoTokenizer.from_pretrained(tiny_path)
    assert type(loaded).__name__ == "Qwen2Tokenizer"
    for text in TRICKY:
        assert loaded(text).input_ids == built(text).input_ids, text
        assert loaded.decode(loaded(text).input_ids) == text


def test_reload_gives_identical_logits(tiny_path):
    tok = build_tokenizer()
    fresh = build_model(tok).eval()
    loaded = AutoModelForCausalLM.from_pretrained(tiny_path).eval()
    ids = torch.tensor([tok(TRICKY[0]).input_ids])
    with torch.no_grad():
        assert torch.equal(fresh(ids).logits, loaded(ids).logits)


def test_delimiters_are_single_tokens_and_shape_suits_vllm(tiny_path):
    tok = AutoTokenizer.from_pretrained(tiny_path)
    for t in (ENDOFTEXT, IM_START, IM_END, *THINK_TAGS):
        assert len(tok(t).input_ids) == 1, t
    # As in Qwen: "<|im_start|>think" is the special token followed by one plain token.
    assert len(tok("<|im_start|>think").input_ids) == 2
    assert len(tok("<|im_start|>answer").input_ids) == 2
    cfg = AutoModelForCausalLM.from_pretrained(tiny_path).config
    assert cfg.head_dim >= 32 and cfg.hidden_size // cfg.num_attention_heads >= 32
    assert cfg.vocab_size > len(tok)  # padded embedding rows, like Qwen's 152,064 > 151,665
    assert tok.eos_token == IM_END


def test_ensure_is_cached(tiny_path):
    before = (tiny_path / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model() == tiny_path
    assert (tiny_path / "model.safetensors").stat().st_mtime_ns == before
