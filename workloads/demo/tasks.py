"""The demo's synthetic reasoning tasks: running sums whose answer needs every step.

A question lists SLOTS keyed lines ("A:7", "B:3", ..., unused ones "H:-") and asks for the
final value of a running operation over the digits. The programmatic teacher writes one
trace line per digit, the digit then the state after it ("7+4": add 7, now 4), so the
thinking carries the state and the answer is the last one. Cutting the thinking short leaves the model holding an
intermediate state: accuracy must fall with the thinking budget, which is what the demo's
scaling curve measures.

Like s1's traces, the teacher's do not all end the same way. Most end right after the last
step with an unchecked answer, and in subtraction that answer carries a borrowing slip (one
too high). The rest go on with "Wait" and a check of the last step ("7=3": its digit, then
the state it gives; some check twice) and answer from that check, which is always right.
So a model trained on them ends its thinking unchecked (the more common ending) and slips on
subtraction, but when budget forcing appends "Wait" in place of its end of thinking it checks
and answers right: extending thinking raises accuracy, s1's central claim, for a reason one
can read in the traces.

Why this exact layout: the built-in tiny model has 2 layers. Every slot line and every
trace line is 4 tokens, every title is 9 tokens and the slot count is fixed, so the digit a
trace line copies always sits the same number of tokens back, and the new state depends on
the two tokens before it. Fixed-offset attention learns that in a couple of minutes on a
CPU; an induction head (look a key up anywhere in the question) does not. The check comes
after the last step, never between steps, so no step's offsets move; the check line is 4
tokens too, so a second forced "Wait" checks the first check at the same distance. Its "="
sits where a step has its operation, so the answer, which reads the last line at a fixed
distance, sees whether that line was a check (no slip) or a subtraction step (the slip).
tests/unit/test_demo_tasks.py checks these lengths.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from collections.abc import Callable, Collection
from dataclasses import dataclass

from thinkube.workloads.formats import S1Record

# The same suffix the evaluation adds to every non-choice question (evaluation.benchmarks),
# so training questions and benchmark prompts are identical text.
ANSWER_INSTRUCTION = "\n\nPut your final answer within \\boxed{}."
SOURCE = "thinkube/synthetic"
SLOTS = 10
EMPTY = "-"
# Budget forcing's default ignore string: the checked traces write exactly what it appends.
WAIT = "Wait"
CHECKED = "="  # a check line's operation
# Share of traces that check their last step, and of those that check it twice. Each under
# half of what could go on, so a greedy model ends its thinking unchecked (and after one
# check) unless "Wait" is forced; the second checks show it how a check after a check goes.
CHECK_SHARE = 0.35
CHECK_TWICE_SHARE = 0.12


@dataclass(frozen=True)
class Domain:
    name: str
    title: str  # the question's first line; all titles have the same token count
    symbol: str  # in every trace line, so each step sees the operation one token back
    modulus: int
    step: Callable[[int, int, int], int]
    slip: int = 0  # what an unchecked answer is off by


DOMAINS = (
    Domain("modular addition", "Sum mod 10:", "+", 10, lambda s, d, m: (s + d) % m),
    # A borrowing slip: the unchecked difference comes out one too high.
    Domain("modular subtraction", "Minus mod 10:", "-", 10, lambda s, d, m: (s - d) % m, slip=1),
    Domain("addition mod 7", "Sums mod 7:", "^", 7, lambda s, d, m: (s + d) % m),
)
DOMAIN_BY_NAME = {d.name: d for d in DOMAINS}
_SLOT = re.compile(r"^[A-Z]:\S*$")  # a slot line, readable or not

LEVELS = {"easy": (1, 3), "medium": (4, 6), "hard": (7, SLOTS)}  # digits per question


@dataclass(frozen=True)
class Problem:
    domain: Domain
    digits: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.digits) <= SLOTS:
            raise ValueError(f"a problem has 1..{SLOTS} digits, got {len(self.digits)}")

    @classmethod
    def parse(cls, question: str) -> Problem | None:
        """The problem a question states, or None when the text is not one of these questions.
        Like a teacher it reads past lines and markup it does not need (the formatting
        artefacts the pool plants), but not past an unreadable slot."""
        lines = question.split("\n")
        domain = next((d for d in DOMAINS if any(d.title in line for line in lines)), None)
        slots = [line for line in lines if _SLOT.match(line)]
        keys = [line.partition(":")[0] for line in slots]
        if domain is None or keys != list(string.ascii_uppercase[:SLOTS]):
            return None
        values = [line.partition(":")[2] for line in slots]
        if not all(v == EMPTY or (len(v) == 1 and v.isdigit()) for v in values):
            return None
        digits = values[: values.index(EMPTY)] if EMPTY in values else values
        if not digits or any(v != EMPTY for v in values[len(digits) :]):
            return None
        return cls(domain, tuple(int(v) for v in digits))

    @property
    def level(self) -> str:
        return next(name for name, (lo, hi) in LEVELS.items() if lo <= len(self.digits) <= hi)

    @property
    def benchmark_question(self) -> str:
        """The question as a benchmark file holds it: the evaluation appends the instruction."""
        values = [str(d) for d in self.digits] + [EMPTY] * (SLOTS - len(self.digits))
        slots = "\n".join(f"{k}:{v}" for k, v in zip(string.ascii_uppercase, values))
        return f"{self.domain.title}\n{slots}"

    @property
    def question(self) -> str:
        return f"{self.benchmark_question}{ANSWER_INSTRUCTION}"

    def states(self) -> list[int]:
        s, out = 0, []
        for d in self.digits:
            s = self.domain.step(s, d, self.domain.modulus)
            out.append(s)
        return out

    @property
    def answer(self) -> str:
        return str(self.states()[-1])

    @property
    def checks(self) -> int:
        """How many times the teacher checks its work on this problem (0, 1 or 2): a fixed
        draw per question, so every distillation of it writes the same trace."""
        draw = int.from_bytes(hashlib.sha256(self.question.encode()).digest()[:8], "big") / 2**64
        return (draw < CHECK_SHARE) + (draw < CHECK_TWICE_SHARE)

    def steps(self) -> list[str]:
        """One line per digit: the digit, the operation, the new state."""
        return [f"{d}{self.domain.symbol}{s}" for d, s in zip(self.digits, self.states())]

    def check(self) -> str:
        """The check of the last step: its digit, "=", the state it gives."""
        return f"{self.digits[-1]}{CHECKED}{self.states()[-1]}"

    def trace(self, checks: int | None = None) -> str:
        """The teacher's thinking: the steps, then `checks` times "Wait" and the check (by
        default as often as the teacher checks this problem)."""
        n = self.checks if checks is None else checks
        return "\n".join(self.steps() + [WAIT, self.check()] * n)

    def given_answer(self, checked: bool) -> str:
        """The answer the teacher gives: right after a check, with its domain's slip without."""
        if checked:
            return self.answer
        return str((self.states()[-1] + self.domain.slip) % self.domain.modulus)

    def attempt(self, checked: bool | None = None) -> str:
        """The teacher's answer text after its trace (by default after trace())."""
        answer = self.given_answer(self.checks > 0 if checked is None else checked)
        return f"Final Answer: \\boxed{{{answer}}}"

    def pool_row(self, uid: str) -> S1Record:
        """The question and its reference answer, as a pool holds them before distillation."""
        return S1Record(
            id=uid,
            question=self.question,
            solution=self.answer,
            cot_type="math",
            source_type=SOURCE,
            domain=self.domain.name,
            metadata={"level": self.level, "steps": len(self.digits)},
        )

    def record(self, uid: str) -> S1Record:
        """The pool row with the teacher's trace and attempt: what distillation makes of it."""
        return self.pool_row(uid).model_copy(update={"thinking": self.trace(), "attempt": self.attempt()})


def problems(n: int, seed: int, steps_range: tuple[int, int], exclude: Collection[str] = frozenset()) -> list[Problem]:
    """`n` distinct problems (by question text) with steps in the range, none in `exclude`."""
    lo, hi = steps_range
    if n > 0.5 * sum(len(DOMAINS) * 10**k for k in range(lo, hi + 1)):
        raise ValueError(f"{n} distinct problems do not fit in {lo}..{hi} steps: widen the range")
    rng, seen = random.Random(seed), set(exclude)
    out: list[Problem] = []
    while len(out) < n:
        p = Problem(rng.choice(DOMAINS), tuple(rng.randrange(10) for _ in range(rng.randint(lo, hi))))
        if p.question not in seen:
            seen.add(p.question)
            out.append(p)
    return out
