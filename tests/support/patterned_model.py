"""A tiny model fine-tuned (for real, a few seconds on CPU) to think a fixed pattern and
then close its thinking: serving tests need a model that predictably tries to end thinking,
which the randomly initialised tiny model never does."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from thinkube.workloads.formats.chat import S1_FORMAT, render_completion, render_generation_prompt
from thinkube.workloads.tiny_model import cache_root, ensure_tiny_model

THOUGHT = "one two three four five six"
ANSWER = "Answer: 7"
STEPS, VERSION = 150, 1


def _examples():
    for i in range(24):
        q = f"What is question {i}?"
        thinking = THOUGHT if i % 3 else f"{THOUGHT} Wait {THOUGHT}"  # continues after a "Wait"
        prompt = render_generation_prompt(q, S1_FORMAT)
        full = render_completion(thinking, ANSWER, S1_FORMAT)
        yield prompt, full[len(S1_FORMAT.think_start) + 1 :]  # the prompt already opened thinking


def patterned_model() -> Path:
    key = hashlib.sha256(f"{THOUGHT}|{ANSWER}|{STEPS}|{VERSION}".encode()).hexdigest()[:10]
    target = cache_root() / "models" / f"tiny-patterned-{key}"
    if target.exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = ensure_tiny_model()
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(0)
    rows = []
    for prompt, completion in _examples():
        p, c = tok.encode(prompt), tok.encode(completion)
        rows.append((p + c, [-100] * len(p) + c))
    width = max(len(r[0]) for r in rows)
    ids = torch.tensor([r[0] + [tok.pad_token_id] * (width - len(r[0])) for r in rows])
    labels = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in rows])
    mask = (labels != -100) | (torch.arange(width)[None] < torch.tensor([len(r[0]) for r in rows])[:, None])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(STEPS):
        loss = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
