"""Optional LLM judge: a second opinion on equivalence from any OpenAI-compatible endpoint.

Off by default; the offline grader decides `correct`. With a judge configured, each record
also gets `judge` (True/False, None when the reply had no verdict) and the report shows the
judge's accuracy and its agreement with the offline grader, side by side, so a judge never
silently replaces the reproducible verdict.
"""

from __future__ import annotations

import re

from thinkube.workloads.llm.client import ChatClient

PROMPT = """You are grading an answer to a problem against the reference answer.
Judge only whether the final answer of the response is equivalent to the reference
(same value, set, interval, expression or option); ignore the reasoning and formatting.

Problem:
{question}

Reference answer:
{reference}

Response:
{response}

Reply with exactly one word: CORRECT or INCORRECT."""

_VERDICT = re.compile(r"\b(INCORRECT|CORRECT)\b", re.IGNORECASE)
# Only the answer part is judged; very long answers are cut to keep the judge call cheap.
MAX_RESPONSE_CHARS = 8000


def parse_verdict(text: str) -> bool | None:
    """The judge's verdict: the last CORRECT/INCORRECT word in its reply, else None."""
    found = _VERDICT.findall(text or "")
    return found[-1].upper() == "CORRECT" if found else None


class LLMJudge:
    def __init__(
        self, url: str, model: str, *, api_key: str | None = None, timeout_s: float = 120.0, max_retries: int = 5
    ):
        if not model:
            raise ValueError("the judge needs a model name: pass --judge-model")
        self.client = ChatClient(url, model=model, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries)

    def describe(self) -> dict:
        return {"url": self.client.base, "model": self.client.model}

    async def judge(self, question: str, reference: str, response: str) -> bool | None:
        prompt = PROMPT.format(question=question, reference=reference, response=response[-MAX_RESPONSE_CHARS:])
        # No max_tokens: a reasoning model used as judge needs room before its verdict word.
        reply = await self.client.chat([{"role": "user", "content": prompt}], temperature=0.0)
        return parse_verdict(reply.content)

    async def aclose(self) -> None:
        await self.client.aclose()
