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
from thinkube.workloads.demo.tasks import DOMAINS, SLOTS, Problem, problems
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
def test_teacher_trace_ends_in_the_answer_and_the_answer_is_right(domain):
    for p in problems(50, 1, (1, SLOTS)):
        p = Problem(domain, p.digits)
        assert p.answer == str(_brute_force(domain, p.digits))
        lines = p.trace().split("\n")
        assert len(lines) == len(p.digits)  # one step per digit: cutting the trace loses steps
        assert lines[-1].endswith(p.answer)
        assert extract_answer(p.attempt()) == p.answer
        assert Problem.parse(p.question) == p == Problem.parse(p.benchmark_question)


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
        line_lengths |= {len(tokenizer(line + "\n")["input_ids"]) for line in p.trace().split("\n")}
        question_lines = p.benchmark_question.split("\n")[1:]
        line_lengths |= {len(tokenizer(line + "\n")["input_ids"]) for line in question_lines}
    assert len(prompt_lengths) == 1 and line_lengths == {4}


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
