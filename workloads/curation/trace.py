"""Trace length: the teacher's thinking in tokens of a target tokenizer (s1's second
difficulty signal and the rank inside a domain).

Without a tokenizer the count is whitespace-separated words, which undercounts tokens
(roughly 0.75 words per token for English math text): thresholds such as s1's 5,600
tokens then mean something else, so the report says which counter was used.
"""

from __future__ import annotations

from thinkube.workloads.curation.rows import StageResult, prov
from thinkube.workloads.formats import S1Record

_BATCH = 512


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer  # optional dependency: only token-accurate runs need it

    if spec == "tiny":
        from thinkube.workloads.tiny_model import ensure_tiny_model

        spec = str(ensure_tiny_model())
    else:
        from thinkube.workloads.uris import local_path, parse_uri

        uri = parse_uri(spec)
        spec = uri.location if uri.scheme == "hf" else str(local_path(spec))
    return AutoTokenizer.from_pretrained(spec)


def count_tokens(texts: list[str], tokenizer_spec: str | None) -> list[int]:
    if tokenizer_spec is None:
        return [len(t.split()) for t in texts]
    tok = load_tokenizer(tokenizer_spec)
    counts: list[int] = []
    for i in range(0, len(texts), _BATCH):
        counts.extend(len(ids) for ids in tok(texts[i : i + _BATCH], add_special_tokens=False)["input_ids"])
    return counts


def measure_traces(records: list[S1Record], tokenizer_spec: str | None) -> StageResult:
    for r, n in zip(records, count_tokens([r.thinking or "" for r in records], tokenizer_spec)):
        prov(r)["trace_tokens"] = n
    return StageResult(records, info={"counter": tokenizer_spec or "whitespace words"})
