"""What one request asks of budget forcing and sampling, every field resolved: the request's
value, else the server's default (protocol.BudgetFields.resolve). The server's defaults are
a BudgetSettings too, so a request field and its default always share one name."""

from __future__ import annotations

from dataclasses import dataclass, replace

from thinkube.api.stages.serve import BudgetDefaults

# The server-wide defaults a BudgetForcedServer's spec.budget documents, defined there once.
_SPEC = BudgetDefaults()
# Seeds of the n choices of one request: apart, so that the samples differ, and reproducible.
SEED_STRIDE = 7919


@dataclass(frozen=True)
class BudgetSettings:
    max_tokens: int
    max_thinking_tokens: int | None = _SPEC.max_thinking_tokens
    min_thinking_tokens: int = _SPEC.min_thinking_tokens
    num_ignore: int = _SPEC.num_ignore
    ignore_string: str = _SPEC.ignore_string
    final_answer_prefix: str = _SPEC.final_answer_prefix
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def for_choice(self, index: int) -> BudgetSettings:
        """The settings of choice `index` of a request's n: only the seed differs."""
        return replace(self, seed=None if self.seed is None else self.seed + SEED_STRIDE * index)
