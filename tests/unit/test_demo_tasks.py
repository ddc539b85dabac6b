"""The demo's synthetic task family, its planted pool and its settings."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pytest

from thinkube.api.stages.curate import CurateConfig, TeacherConfig
from thinkube.workloads.curation.pipeline import run as curate
from thinkube.workloads.demo import data
from thinkube.workloads.demo.config import DemoConfig
from thinkube.workloads.demo.pipeline import NGRAM
from thinkube.workloads.demo.tasks import (
    CHECK_SHARE,
    CHECK_TWICE_SHARE,
    CHECKED,
    DOMAINS,
    SLOTS,
    WAIT,
    Problem,
    problems,
)
from thinkube.workloads.evaluation.benchmarks import load_benchmark
from thinkube.workloads.formats import load_records, render_training_example
from thinkube.workloads.grading.extract import extract_answer

SMALL = data.DataSpec(pool_size=300, benchmark_size=40, seed=5)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from thinkube.workloads.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("tiny")[0])


def _brute_force(domain, digits) -> int:
    total = sum(digits) if domain.symbol != "-" else -sum(digits)
    return total % domain.modulus


@pytest.mark.parametrize("domain", DOMAINS, ids=lambda d: d.name)
def test_teacher_trace_ends_in_the_answer_and_a_checked_answer_is_right(domain):
    for p in problems(50, 1, (1, SLOTS)):
        p = Problem(domain, p.digits)
        assert p.answer == str(_brute_force(domain, p.digits))
        lines = p.trace(0).split("\n")
        assert len(lines) == len(p.digits)  # one step per digit: cutting the trace loses steps
        assert lines == p.steps() and lines[-1].endswith(p.answer)
        assert extract_answer(p.attempt(checked=True)) == p.answer
        assert Problem.parse(p.question) == p == Problem.parse(p.benchmark_question)


def test_the_teacher_checks_a_fixed_share_of_problems_by_question():
    ps = problems(3000, 7, (1, SLOTS))
    assert {p.checks for p in ps} == {0, 1, 2}
    assert abs(sum(p.checks > 0 for p in ps) / len(ps) - CHECK_SHARE) < 0.03
    assert abs(sum(p.checks == 2 for p in ps) / len(ps) - CHECK_TWICE_SHARE) < 0.03
    for domain in DOMAINS:  # every domain has every ending
        mine = [p for p in ps if p.domain == domain]
        assert 0.25 < sum(p.checks > 0 for p in mine) / len(mine) < 0.45 and any(p.checks == 2 for p in mine)
    again = [Problem(p.domain, p.digits) for p in ps]  # a new object, the same question: the same choice
    assert [p.checks for p in again] == [p.checks for p in ps]
    for p in ps[:200]:
        assert p.trace() == p.trace(p.checks) and p.attempt() == p.attempt(p.checks > 0)


def test_only_an_unchecked_subtraction_answer_slips():
    for p in problems(300, 8, (1, SLOTS)):
        unchecked, checked = extract_answer(p.attempt(checked=False)), extract_answer(p.attempt(checked=True))
        assert checked == p.answer
        if p.domain.name == "modular subtraction":
            assert unchecked == str((int(p.answer) + 1) % 10)
        else:
            assert unchecked == p.answer


def test_a_check_follows_the_steps_and_checks_the_last_one():
    p = Problem(DOMAINS[1], (3, 9, 4))
    assert p.trace(0) == "3-7\n9-8\n4-4"
    assert p.trace(1) == f"3-7\n9-8\n4-4\n{WAIT}\n4=4"
    assert p.trace(2) == f"3-7\n9-8\n4-4\n{WAIT}\n4=4\n{WAIT}\n4=4"
    assert (p.attempt(checked=False), p.attempt(checked=True)) == (
        "Final Answer: \\boxed{5}",
        "Final Answer: \\boxed{4}",
    )


def test_the_teacher_reads_past_artefacts_but_not_an_unreadable_slot():
    p = problems(1, 4, (3, 6))[0]
    for name in ("asy", "image", "numbering", "bold_digits"):
        assert Problem.parse(data.ARTEFACTS[name](p.pool_row("x")).question) == p, name
    q = p.question
    for broken in (
        q.replace("\nA:", "\nA:?", 1),
        q.replace("Sum", "Product", 1),
        q.replace("\nJ:", "\nK:", 1),
        "What is 2+2?",
    ):
        assert Problem.parse(broken) is None


def test_layout_is_fixed_width_in_tiny_model_tokens(tokenizer):
    """The property the tiny model relies on (see tasks.py): every prompt has the same
    length and every trace line is 4 tokens, whatever the domain and the step count."""
    prompt_lengths, line_lengths = set(), set()
    for p in problems(60, 2, (1, SLOTS)):
        prompt, completion = render_training_example(p.record("x"))
        prompt_lengths.add(len(tokenizer(prompt)["input_ids"]))
        line_lengths |= {len(tokenizer(line + "\n")["input_ids"]) for line in p.steps()}
        question_lines = p.benchmark_question.split("\n")[1:]
        line_lengths |= {len(tokenizer(line + "\n")["input_ids"]) for line in question_lines}
    assert len(prompt_lengths) == 1 and line_lengths == {4}


def test_a_check_moves_no_step_and_repeats_at_a_fixed_distance(tokenizer):
    """A checked trace is the unchecked one with "Wait" and the check after it, in the
    tokens budget forcing appends ("Wait" right after the last line's newline), so every step
    keeps its offsets; a check line is 4 tokens, and its digit and state sit 6 tokens after
    those of the line before it, a step or a check."""
    wait = tokenizer.encode(WAIT, add_special_tokens=False)
    newline = tokenizer.encode("\n", add_special_tokens=False)
    checked = tokenizer.encode(CHECKED, add_special_tokens=False)
    assert len(wait) == len(newline) == len(checked) == 1
    for p in problems(60, 3, (1, SLOTS)):
        steps = tokenizer.encode(p.trace(0) + "\n", add_special_tokens=False)
        last = steps[-4:]
        check = [last[0], *checked, last[2], *newline]
        assert tokenizer.encode(p.check() + "\n", add_special_tokens=False) == check
        for n in (1, 2, 3):
            ids = tokenizer.encode(p.trace(n) + "\n", add_special_tokens=False)
            assert ids[: len(steps)] == steps  # the steps tokenize exactly as without a check
            assert ids[len(steps) :] == (wait + newline + check) * n  # each check: 6 tokens, a 4-token line


def test_problems_are_distinct_and_respect_exclusions():
    first = problems(100, 3, (2, 4))
    again = problems(100, 3, (2, 4), exclude={first[0].question})
    assert len({p.question for p in first}) == 100
    assert first[0].question not in {p.question for p in again}
    with pytest.raises(ValueError, match="widen the range"):
        problems(100, 3, (1, 1))


def test_pool_is_deterministic_and_plants_what_it_says(tmp_path):
    rows, bench = data.build(SMALL)
    rows2, _ = data.build(SMALL)
    assert [r.model_dump() for r in rows] == [r.model_dump() for r in rows2]
    planted = Counter(r.extra.get("planted", "clean") for r in rows)
    assert planted["duplicate"] == SMALL.duplicates and planted["leaked"] == SMALL.leaked
    assert all(planted[a] == SMALL.per_artefact for a in data.ARTEFACTS)
    leaked = {r.question for r in rows if r.extra.get("planted") == "leaked"}
    assert leaked <= {p.question for p in bench}


@pytest.fixture(scope="module")
def teacher_url():
    from tests.support.servers import ThreadServer
    from thinkube.workloads.demo.teacher import ENGINE, SyntheticTeacher
    from thinkube.workloads.formats.chat import S1_FORMAT
    from thinkube.workloads.models import resolve_model
    from thinkube.workloads.serving.app import ServerConfig, create_app

    with ThreadServer(create_app(SyntheticTeacher(resolve_model("tiny")[0], ENGINE), ServerConfig(fmt=S1_FORMAT))) as s:
        yield f"{s.url}@{ENGINE}"


def test_the_served_teacher_checks_when_wait_is_forced(teacher_url):
    """Over the server's budget forcing: the teacher's own trace and answer, and after each
    forced "Wait" a check and the checked answer, as a trained model should learn to do."""
    import httpx

    url, model = teacher_url.rsplit("@", 1)
    minus = [p for p in problems(40, 9, (3, 6)) if p.domain.name == "modular subtraction"]
    unchecked, once, twice = (next(p for p in minus if p.checks == n) for n in (0, 1, 2))
    for p, num_ignore, checks in (
        (unchecked, 0, 0),
        (once, 0, 1),
        (twice, 0, 2),
        (unchecked, 1, 1),
        (unchecked, 2, 2),
        (once, 1, 2),
    ):
        body = {"model": model, "messages": [{"role": "user", "content": p.question}], "num_ignore": num_ignore}
        message = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).json()["choices"][0]["message"]
        assert message["reasoning_content"] == p.trace(checks), (p, num_ignore)
        assert message["content"] == p.attempt(checked=checks > 0)
        assert (extract_answer(message["content"]) == p.answer) == (checks > 0)  # subtraction slips unchecked


def test_curation_removes_every_planted_row(tmp_path, teacher_url):
    """The real curation pipeline (the demo teacher served in-process; no base model:
    difficulty skipped) on the demo pool, which holds no traces."""
    pool, bench, _ = data.write(SMALL, tmp_path / "data")
    assert not any(r.thinking or r.attempt for r in load_records(pool))
    cfg = CurateConfig(
        out=str(tmp_path / "cur"),
        pools={"synthetic": str(pool)},
        decontaminate={"heldout": str(bench)},
        ngram=NGRAM,
        domain_column="domain",
        target_size=150,
        seed=0,
        teacher=TeacherConfig(endpoint=teacher_url, max_tokens=96),
    )
    report = curate(cfg)
    selected = load_records(tmp_path / "cur" / "selected.jsonl")
    # Of a duplicated pair either copy may survive (dedupe keeps the first in pool order).
    assert not [r.id for r in selected if r.extra.get("planted", "duplicate") != "duplicate"]
    assert len({r.question for r in selected}) == len(selected)
    drops = {s["stage"]: s["dropped"] for s in report["stages"]}
    assert drops["dedupe"] == {"duplicate": SMALL.duplicates}
    assert drops["decontaminate"] == {"contaminated:heldout": SMALL.leaked}  # and no false positive
    assert drops["quality"] == {name: SMALL.per_artefact for name in data.ARTEFACTS}
    assert set(report["per_domain"]) == {d.name for d in DOMAINS}


def test_benchmark_file_loads_and_prompts_match_training_questions(tmp_path):
    _, bench_path, _ = data.write(SMALL, tmp_path)
    bench = load_benchmark(data.BENCHMARK_NAME, str(bench_path))
    _, problems_ = data.build(SMALL)
    assert [item.prompt for item in bench.items] == [p.question for p in problems_]
    assert {item.kind for item in bench.items} == {"integer"}
    assert json.loads(bench_path.read_text().splitlines()[0])["answer"] == problems_[0].answer


def test_fingerprints_redo_a_changed_stage_and_everything_after():
    base = DemoConfig()
    more_epochs = replace(base, epochs=base.epochs + 1)
    assert base.fingerprint("curate") == more_epochs.fingerprint("curate")
    assert base.fingerprint("train") != more_epochs.fingerprint("train")
    assert base.fingerprint("eval") != more_epochs.fingerprint("eval")
    other_seed = replace(base, data=replace(base.data, seed=9))
    assert base.fingerprint("data") != other_seed.fingerprint("data")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"nproc": 3}, "nproc 3"),
        ({"select": 10**6}, "select 1000000"),
        ({"budgets": ()}, "budgets"),
        ({"stages": ("serve",)}, "stages"),
    ],
)
def test_bad_settings_name_the_setting(change, message):
    with pytest.raises(ValueError, match=message):
        replace(DemoConfig(), **change).validate()


def _bench(**accuracy: float) -> dict:
    return {"settings": {k.replace("_", "-"): {"accuracy": v} for k, v in accuracy.items()}, "curves": {}}


def test_the_extension_verdict_compares_each_extension_with_its_own_budget_and_states_the_sign():
    from thinkube.workloads.demo.report import extension_verdict

    up = extension_verdict(_bench(max8=10.0, none=60.0, ignore1=95.0, ignore2=90.0, max8_ignore1=12.5))
    assert up is not None and up["helped"]
    assert up["baselines"] == {"ignore1": "none", "ignore2": "none", "max8-ignore1": "max8"}
    assert up["margins_points"] == {"ignore1": 35.0, "ignore2": 30.0, "max8-ignore1": 2.5}
    assert up["verdict"].startswith('extending thinking with "Wait" raised accuracy, by up to 35.0 points')
    assert "ignore1 +35.0 points (60.0% -> 95.0%)" in up["verdict"] and "max8-ignore1 +2.5 points" in up["verdict"]

    down = extension_verdict(_bench(none=60.0, ignore1=60.0))
    assert down is not None and not down["helped"] and "did NOT raise accuracy: ignore1 +0.0 points" in down["verdict"]
    mixed = extension_verdict(_bench(none=60.0, ignore1=70.0, ignore2=40.0))
    assert mixed is not None and not mixed["helped"] and "helped only in part" in mixed["verdict"]
    assert extension_verdict(_bench(none=60.0, max8=10.0)) is None  # nothing extended
