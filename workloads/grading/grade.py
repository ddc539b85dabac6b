"""Offline grading: extracted answer vs reference, per answer kind, no API keys.

- integer (AIME): both sides read as integers; leading zeros, thousands separators, `$`,
  degrees, `\\text{...}` units and `n = ...` are tolerated; anything non-integral is wrong.
- math (MATH-500 and generic): a normalised string match first (fast, and the fallback
  when symbolic checking fails), then mathematical equivalence with math-verify under a
  time limit of our own (see timelimit.py for why not math-verify's).
- choice (GPQA): the extracted option letter equals the reference letter.
An answer that cannot be extracted is wrong and flagged `unextracted`; never a default.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache

from thinkube.workloads.grading.extract import FORMATTING, extract_answer, extract_choice
from thinkube.workloads.grading.timelimit import TimeLimitExceeded, run_with_time_limit

KINDS = ("integer", "math", "choice")
DEFAULT_TIMEOUT_S = 5.0  # per math-verify comparison; the same default math-verify uses
LETTERS = "ABCDEFGHIJ"

# We disable math-verify's signal timeouts on purpose and enforce our own, so its
# "you must provide the logic for timeout" warning is noise here.
for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(lambda record: "Timeout is disabled" not in record.getMessage())


@dataclass(frozen=True)
class Verdict:
    extracted: str | None  # None: nothing found in the answer text
    correct: bool
    method: str  # how it was decided: unextracted, integer, string, math-verify, math-verify-timeout, choice

    @property
    def unextracted(self) -> bool:
        return self.extracted is None

    def to_dict(self) -> dict:
        return {**asdict(self), "unextracted": self.unextracted}


def parse_integer(text: str) -> int | None:
    """`text` as an integer, or None when it is not one ("042", "1,000", "$42", "42^\\circ", "n = 42 cm")."""
    s = FORMATTING.sub(r" \1 ", text).rsplit("=", 1)[-1]  # `m+n=125`: the right-hand side, as Minerva/lm-eval
    s = re.sub(r"\{,\}|\\[,;:! ]|\\\$|\$|\\%|%", "", s)  # `1{,}000`, `1,\!000`, `\$25`, `42\%`
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°", " ", s)
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)
    m = re.fullmatch(r"\s*([+-]?\d+)(?:\.0*)?\s*([A-Za-z][A-Za-z\s]*)?\.?\s*", s)
    return int(m.group(1)) if m else None


def normalize_math(text: str) -> str:
    """A canonical string for a LaTeX answer (MATH's usual normalisation), for exact comparison."""
    s = text.strip()
    s = re.sub(r"\\(?:[,;:! ]|displaystyle|left|right)", "", s)
    s = s.replace("\n", "").replace("dfrac", "frac").replace("tfrac", "frac")
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°", "", s)
    s = re.sub(r"\\\$|\$|\\%|%", "", s)
    s = re.sub(r"\\text\{\s+[^{}]*\}\s*$", "", s)  # trailing unit: "10\text{ cm}"
    s = FORMATTING.sub(r"\1", s)
    s = s.rsplit("=", 1)[-1]  # "x = 3" answers "3"; an equation is graded by its right-hand side (Minerva/lm-eval)
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = re.sub(r"\\frac(\w)(\w)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\{([^{}]*)\}(\w)", r"\\frac{\1}{\2}", s)
    s = s.replace(" ", "").rstrip(".")
    s = re.sub(r"^(-?)\.(\d)", r"\g<1>0.\2", s)
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    if m:
        s = f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
    return s


@lru_cache(maxsize=8192)
def _parse(answer: str):
    # Imported here so loading this module (e.g. for AIME or GPQA grading) stays cheap.
    from math_verify import parse

    return parse(f"\\boxed{{{answer}}}", parsing_timeout=None)


def _verify(gold: str, pred: str) -> bool:
    from math_verify import verify

    gold_parsed, pred_parsed = _parse(gold), _parse(pred)
    return bool(gold_parsed and pred_parsed and verify(gold_parsed, pred_parsed, timeout_seconds=None))


def grade(
    kind: str, gold: str, text: str | None, *, n_choices: int = 4, timeout_s: float | None = DEFAULT_TIMEOUT_S
) -> Verdict:
    """Grade the answer text of one generation against the reference `gold`."""
    if kind == "choice":
        letter = extract_choice(text, LETTERS[:n_choices])
        return Verdict(
            letter, letter is not None and letter == gold.strip().upper(), "choice" if letter else "unextracted"
        )
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}: use one of {', '.join(KINDS)}")
    try:  # linear time, but a stalled sweep costs more than one unextracted answer
        extracted = run_with_time_limit(lambda: extract_answer(text), timeout_s)
    except TimeLimitExceeded:
        return Verdict(None, False, "extraction-timeout")
    if extracted is None:
        return Verdict(None, False, "unextracted")
    if kind == "integer":
        want, got = parse_integer(gold), parse_integer(extracted)
        if want is None:
            raise ValueError(
                f"integer benchmark with a non-integer reference answer {gold!r}: set kind 'math' for this benchmark"
            )
        return Verdict(extracted, got == want, "integer")
    if normalize_math(gold) == normalize_math(extracted):
        return Verdict(extracted, True, "string")
    try:
        return Verdict(extracted, run_with_time_limit(lambda: _verify(gold, extracted), timeout_s), "math-verify")
    except TimeLimitExceeded:
        return Verdict(extracted, False, "math-verify-timeout")


GradeJob = tuple[str, str, "str | None", int]  # (kind, gold, answer text, n_choices)


def _grade_job(job: GradeJob) -> Verdict:
    kind, gold, text, n_choices = job
    return grade(kind, gold, text, n_choices=n_choices)


def grade_many(jobs: Iterable[GradeJob], workers: int = 0) -> list[Verdict]:
    """Grade many answers; `workers` > 0 spreads them over that many processes.

    Workers come from a fork server that has already imported this module (and so
    math-verify and sympy): fork-safe even when the caller runs threads, and workers start
    without paying the imports again.
    """
    jobs = list(jobs)
    if workers <= 0:
        return [_grade_job(j) for j in jobs]
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "math_verify"])
    chunk = max(1, len(jobs) // (workers * 8))
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        return list(pool.map(_grade_job, jobs, chunksize=chunk))
