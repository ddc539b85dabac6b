"""`thinkube eval`'s settings: what an EvalSweep's spec holds, and what a run adds to it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from thinkube.api.model import Model
from thinkube.api.stages.train import ChatFormatName

# The same default math-verify uses for one symbolic comparison.
GRADE_TIMEOUT_S = 5.0


def int_list(value: Any) -> Any:
    """`64,128` (a flag or a file) or a single number, as a list; anything else is left to pydantic."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, str):
        try:
            return [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"expected comma-separated integers such as 64,128,256, got {value!r}") from None
    return value


def named_paths(entries: list[str]) -> dict[str, str]:
    """NAME=PATH strings (the flag's form, or a list in a file) as {name: path}."""
    result = {}
    for entry in entries:
        name, sep, uri = str(entry).partition("=")
        if not sep or not name or not uri:
            raise ValueError(f"benchmark {entry!r}: use NAME=PATH, e.g. aime24=/data/aime24.jsonl")
        result[name] = uri
    return result


class EvalSettings(Model):
    """The budget grid and how each question is asked; an EvalSweep's spec embeds these fields."""

    max_thinking_tokens: list[Annotated[int, Field(ge=1, le=1_048_576)]] = Field(
        default_factory=list,
        max_length=64,
        description=("budget-forcing maxima to sweep; the unforced baseline is always included"),
    )
    num_ignore: list[Annotated[int, Field(ge=0, le=64)]] = Field(
        default_factory=list, max_length=64, description=("extension counts to sweep (0 is the baseline)")
    )
    combine: bool = Field(default=False, description="also sweep every (maximum, extension count) pair")
    ignore_string: str | None = Field(
        default=None, max_length=256, description=("extension string (default: the server's)")
    )
    final_answer_prefix: str | None = Field(default=None, max_length=256, description="default: the server's")
    samples: int = Field(default=1, ge=1, le=1024, description="samples per question (majority vote when > 1)")
    temperature: float = Field(default=0.0, ge=0, le=2, description="0: greedy, as s1 reports")
    seed: int = Field(default=0, ge=0, description="base seed of sampling and of the GPQA option shuffle")
    concurrency: int = Field(default=8, ge=1, le=1024, description="requests in flight per benchmark")
    max_tokens: int | None = Field(
        default=None, ge=1, le=1_048_576, description=("completion cap (default: the server's)")
    )
    chat_format: ChatFormatName | None = Field(
        default=None, description=("split thinking from content for servers that return no reasoning_content")
    )

    _lists = field_validator("max_thinking_tokens", "num_ignore", mode="before")(int_list)


class EvalConfig(EvalSettings):
    """A whole `thinkube eval` run: the settings, the target, the benchmarks and the output."""

    target: str | None = Field(
        default=None, pattern=r"^https?://\S+$", description=("URL of `thinkube serve` or any OpenAI-compatible server")
    )
    model: str | None = Field(
        default=None, min_length=1, description=("model name to request (default: the server's first)")
    )
    benchmarks: dict[str, str] = Field(default_factory=dict, description="benchmark name -> file (path or URI)")
    out: str = Field(
        min_length=1, description="output folder (path or pvc://): records, results.json, results.md, plot"
    )
    limit: int | None = Field(default=None, ge=1, description="first N questions of each benchmark (smoke runs)")
    judge_url: str | None = Field(
        default=None, pattern=r"^https?://\S+$", description=("optional LLM judge (OpenAI-compatible)")
    )
    judge_model: str | None = Field(default=None, min_length=1, description="model name for the judge")
    grade_timeout: float = Field(default=GRADE_TIMEOUT_S, gt=0, description="seconds per symbolic comparison")
    progress: bool = Field(default=True, description="a progress bar on a terminal (log lines otherwise)")
    report_only: bool = Field(default=False, description="rebuild the reports from the output folder's records")

    _named = field_validator("benchmarks", mode="before")(
        lambda value: named_paths(value) if isinstance(value, list) else value
    )

    @model_validator(mode="after")
    def _complete(self) -> EvalConfig:
        if not self.report_only:
            if not self.target:
                raise ValueError("target is required (--target): a server URL such as http://127.0.0.1:8000")
            if not self.benchmarks:
                raise ValueError("give at least one benchmark: --benchmark NAME=PATH")
        if self.judge_url and not self.judge_model:
            raise ValueError("judge_url needs judge_model (--judge-model)")
        return self
