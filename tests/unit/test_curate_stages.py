"""Curation stages on a synthetic pool with known duplicates, contamination and artefacts:
each stage must drop exactly the rows planted for it (no model calls here; see
tests/e2e/test_curate_pipeline.py for base models and the judge)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thinkube.api.stages.curate import CurateConfig
from thinkube.workloads.curation import decontam, select
from thinkube.workloads.curation.cli import resolve_config
from thinkube.workloads.curation.domains import msc_rubric, parse_code
from thinkube.workloads.curation.ingest import PoolError
from thinkube.workloads.curation.pipeline import run
from thinkube.workloads.formats import S1Record, load_records, save_records

BENCH_Q = (
    "Let $x$ be the number of ordered pairs of positive integers whose product equals the "
    "number of divisors of twenty four; find $x$."
)


def _thinking(n_words: int) -> str:
    return " ".join(["step"] * n_words)


def write_pool(tmp: Path) -> dict:
    """Two pools (JSONL with its own column names, Parquet in the plain layout) and a
    benchmark file; returns the URIs and the ids each stage must drop."""
    numina = [  # problem/domain_code columns: mapped with a column map
        *(
            {
                "id": f"n-ok-{i}",
                "problem": f"Find the sum of the first {i} odd numbers times {i + 7}.",
                "solution": f"\\boxed{{{i * i * (i + 7)}}}",
                "thinking": _thinking(10 * i),
                "attempt": "ok",
                "source_type": "AI-MO/NuminaMath-CoT",
                "domain_code": "11" if i % 2 else "05",
            }
            for i in range(1, 9)
        ),
        {
            "id": "n-dup",
            "problem": "  FIND the sum of the first 1 odd numbers   times 8. ",
            "solution": "\\boxed{8}",
            "thinking": _thinking(5),
            "attempt": "ok",
            "source_type": "numina",
            "domain_code": "11",
        },
        {
            "id": "n-contam",
            "problem": "Warm-up. " + BENCH_Q[:120] + " Show work.",
            "solution": "\\boxed{1}",
            "thinking": _thinking(5),
            "attempt": "ok",
            "source_type": "numina",
            "domain_code": "11",
        },
        {
            "id": "n-nothink",
            "problem": "What is 17 times 3 plus the square of 4?",
            "solution": "\\boxed{67}",
            "thinking": "  ",
            "attempt": "ok",
            "source_type": "numina",
            "domain_code": "11",
        },
        {
            "id": "n-noattempt",
            "problem": "What is the product of the primes below 10?",
            "solution": "\\boxed{210}",
            "thinking": _thinking(5),
            "attempt": None,
            "source_type": "numina",
            "domain_code": "11",
        },
        {
            "id": "n-asy",
            "problem": "In the figure [asy]draw((0,0)--(1,1));[/asy] find the slope.",
            "solution": "\\boxed{1}",
            "thinking": _thinking(5),
            "attempt": "ok",
            "source_type": "numina",
            "domain_code": "51",
        },
        {
            "id": "n-image",
            "problem": "See ![Image](fig.png) and count the triangles.",
            "solution": "\\boxed{5}",
            "thinking": _thinking(5),
            "attempt": "ok",
            "source_type": "numina",
            "domain_code": "05",
        },
        {
            "id": "n-num",
            "problem": "p3. How many subsets does a set of four elements have?",
            "solution": "\\boxed{16}",
            "thinking": _thinking(5),
            "attempt": "ok",
            "source_type": "numina",
            "domain_code": "05",
        },
        {
            "id": "n-bold",
            "problem": "**Problem12** Find the remainder of 2^10 divided by 7.",
            "solution": "\\boxed{2}",
            "thinking": _thinking(5),
            "attempt": "ok",
            "source_type": "numina",
            "domain_code": "11",
        },
        {
            "id": "n-easy-1",
            "problem": "Compute the value of seven plus five.",
            "solution": "The sum is \\boxed{12}.",
            "thinking": _thinking(7),
            "attempt": "ok",
            "source_type": "numina",
            "domain_code": "11",
        },
        {
            "id": "n-easy-2",
            "problem": "Simplify one half plus one quarter.",
            "solution": "\\boxed{\\frac{3}{4}}",
            "thinking": _thinking(7),
            "attempt": "ok",
            "source_type": "numina",
            "domain_code": "26",
        },
    ]
    aime = [  # plain layout, Parquet; [asy] is allowed here
        {
            "id": "a-asy",
            "question": "[asy]unitsize(1cm);[/asy] Find the area of the square of side 9.",
            "solution": "81",
            "thinking": _thinking(300),
            "attempt": "81",
            "source_type": "AIME",
            "grade": "Yes",
            "domain_code": "51",
        },
        {
            "id": "a-1",
            "question": "Find the number of positive divisors of 2024.",
            "solution": "12",
            "thinking": _thinking(200),
            "attempt": "12",
            "source_type": "AIME",
            "grade": "Yes",
            "domain_code": "11",
        },
        {
            "id": "a-2",
            "question": "Find the remainder when 3^100 is divided by 1000.",
            "solution": "1",
            "thinking": _thinking(250),
            "attempt": "1",
            "source_type": "AIME",
            "grade": "No",
            "domain_code": "11",
        },
        {
            "id": "a-easy",
            "question": "What is 2 + 2?",
            "solution": "004",
            "thinking": _thinking(3),
            "attempt": "4",
            "source_type": "AIME",
            "grade": "Yes",
            "domain_code": "11",
        },
    ]
    numina_path = tmp / "numina.jsonl"
    numina_path.write_text("".join(json.dumps(r) + "\n" for r in numina))
    aime_path = tmp / "aime.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(aime), aime_path)
    bench = tmp / "bench.jsonl"
    bench.write_text(json.dumps({"problem": BENCH_Q, "answer": "8"}) + "\n")
    return {
        "pools": {"numina": str(numina_path), "aime": str(aime_path)},
        "column_maps": {"numina": {"question": "problem"}},
        "decontaminate": {"aime24": str(bench)},
        "dropped": {
            "dedupe": {"n-dup"},
            "decontaminate": {"n-contam"},
            "quality": {"n-nothink", "n-noattempt", "n-asy", "n-image", "n-num", "n-bold"},
        },
        "easy": {"n-easy-1": "\\boxed{12}", "n-easy-2": "The answer is $\\boxed{0.75}$", "a-easy": "\\boxed{4}"},
        "questions": {r["id"]: r.get("problem") or r.get("question") for r in numina + aime},
    }


def config(pool: dict, out: Path, **overrides) -> CurateConfig:
    base = {
        "out": str(out),
        "pools": pool["pools"],
        "column_maps": pool["column_maps"],
        "decontaminate": pool["decontaminate"],
        "domain_column": "domain_code",
        "target_size": 6,
        "seed": 0,
    }
    return CurateConfig(**{**base, **overrides})


def stage_ids(out: Path, name: str, dropped: bool = False) -> set[str]:
    path = next((out / "stages").glob(f"[0-9][0-9]_{name}{'.dropped' if dropped else ''}.jsonl"))
    return {json.loads(line)["id"] for line in path.read_text().splitlines()}


@pytest.fixture
def pool(tmp_path):
    return write_pool(tmp_path)


def test_each_stage_drops_exactly_its_rows(pool, tmp_path):
    out = tmp_path / "run"
    data = run(config(pool, out, target_size=14))
    for name in ("dedupe", "decontaminate", "quality"):
        assert stage_ids(out, name, dropped=True) == pool["dropped"][name], name
    stages = {s["stage"]: s for s in data["stages"]}
    assert stages["ingest"]["kept"] == 22
    assert stages["quality"]["dropped"] == {
        "missing_thinking": 1,
        "missing_attempt": 1,
        "asy": 1,
        "image": 1,
        "numbering": 1,
        "bold_digits": 1,
    }
    assert stages["decontaminate"]["dropped"] == {"contaminated:aime24": 1}
    assert stages["difficulty"]["info"] == {"skipped": "no base models"}
    # No base model: the easy rows survive to selection; a-asy is AIME, so [asy] is allowed.
    assert "a-asy" in stage_ids(out, "quality")
    selected = load_records(out / "selected.jsonl")
    assert len(selected) == 14 and data["selected"] == 14
    assert [r.id for r in load_records(out / "selected.parquet")] == [r.id for r in selected]
    # Provenance: source, row index, decisions, trace length; domains from the column.
    a1 = next(r for r in selected if r.id == "a-1")
    prov = a1.extra["curation"]
    assert (prov["source"], prov["index"], prov["trace_tokens"]) == ("aime", 1, 200)
    assert prov["decisions"]["select"] == {"how": "auto", "rule": "(?i)aime"}
    assert a1.domain == "11"
    for name in ("report.json", "report.md", "domains.png"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["per_source"] == {"aime": 4, "numina": 10}
    assert report["per_domain"] == {"11": 8, "05": 4, "51": 1, "26": 1}
    assert "| quality | 20 | 14 |" in (out / "report.md").read_text()


def test_selection_is_seeded_auto_includes_and_prefers_long_traces(pool, tmp_path):
    def picks(seed):
        out = tmp_path / f"seed{seed}"
        run(config(pool, out, seed=seed, disable_rules=[]))
        rows = load_records(out / "selected.jsonl")
        return [r.id for r in rows]

    first, again, other = picks(0), picks(0), picks(3)
    assert first == again
    assert first != other
    # AIME rows with a teacher grade of Yes are auto-included (a-2 was graded No).
    for ids in (first, other):
        assert {"a-asy", "a-1", "a-easy"} <= set(ids[:3]) and "a-2" not in ids[:3]
        assert len(ids) == 6


def test_rank_weighting_favours_longest_traces():
    rows = []
    for i in range(6):
        r = S1Record(question=f"q{i}", id=f"r{i}", domain="11")
        r.extra["curation"] = {"source": "p", "index": i, "uid": f"p:{i}", "decisions": {}, "trace_tokens": i * 10}
        rows.append(r)
    cfg = CurateConfig(out="x", pools={"p": "x"}, domain_column="d", target_size=1, auto_include=[])
    firsts = [
        select.select([r.model_copy(deep=True) for r in rows], cfg.model_copy(update={"seed": s})).kept[0].id
        for s in range(400)
    ]
    # P(rank 0) = 0.5 / (1 - 2^-6) ~ 0.51, rank 1 ~ 0.25, ...
    assert 170 < firsts.count("r5") < 240 and 70 < firsts.count("r4") < 130 and firsts.count("r0") < 15


def test_target_larger_than_pool(pool, tmp_path):
    with pytest.raises(select.SelectionError, match=r"target_size 40 is larger than the 14 rows left.*--allow-smaller"):
        run(config(pool, tmp_path / "a", target_size=40))
    data = run(config(pool, tmp_path / "b", target_size=40, allow_smaller=True))
    assert data["selected"] == 14


def test_rerun_reuses_finished_stages(pool, tmp_path, caplog):
    out = tmp_path / "run"
    run(config(pool, out))
    caplog.set_level("INFO")
    run(config(pool, out, target_size=5))  # only the selection changed
    reused = [m for m in caplog.messages if "reusing" in m]
    assert len(reused) == 8 and not any("select: reusing" in m for m in reused)
    assert len(load_records(out / "selected.jsonl")) == 5


def test_quality_rules_configurable(pool, tmp_path):
    out = tmp_path / "run"
    data = run(
        config(pool, out, disable_rules=["image", "asy"], extra_rules={"triangles": r"\btriangles\b"}, target_size=3)
    )
    quality = next(s for s in data["stages"] if s["stage"] == "quality")
    assert quality["dropped"] == {
        "missing_thinking": 1,
        "missing_attempt": 1,
        "numbering": 1,
        "bold_digits": 1,
        "triangles": 1,
    }
    assert "n-asy" in stage_ids(out, "quality") and "n-image" in stage_ids(out, "quality", dropped=True)
    with pytest.raises(
        ValueError, match="disable_rules \\['nope'\\]: no such rule; rules: teacher_failed, missing_thinking"
    ):
        run(config(pool, tmp_path / "b", disable_rules=["nope"]))


def test_unknown_column_in_column_map_names_it(pool, tmp_path):
    with pytest.raises(
        PoolError, match=r"pool 'numina'.*column 'prob' for field 'question'.*columns found: id, problem"
    ):
        run(config(pool, tmp_path / "o", column_maps={"numina": {"question": "prob"}}))


def test_empty_pool(tmp_path, pool):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(PoolError, match="pool 'e'.*has no rows"):
        run(config(pool, tmp_path / "o", pools={**pool["pools"], "e": str(empty)}))


def test_domain_column_missing_names_columns(pool, tmp_path):
    with pytest.raises(ValueError, match="--domain-column 'area'.*columns found: .*domain_code"):
        run(config(pool, tmp_path / "o", domain_column="area"))


def test_decontamination_ngrams():
    index = decontam.build_index({"b": ["one two three four five six seven eight nine"]}, 8)
    assert len(index) == 2
    rows = [
        S1Record(question=q, id=str(i))
        for i, q in enumerate(
            ["x One, two three four five six seven eight y", "one two three four five six seven nein"]
        )
    ]
    for r in rows:
        r.extra["curation"] = {"decisions": {}}
    result = decontam.decontaminate(rows, index, 8)
    assert [r.id for r in result.kept] == ["1"] and result.drop_counts() == {"contaminated:b": 1}
    # Shorter than n words: the whole text is the one gram (exact match only).
    assert decontam.ngram_hashes("a b", 8) == decontam.ngram_hashes("A, b!", 8)


def test_msc_rubric_and_code_parsing():
    rubric = msc_rubric()
    assert (
        len(rubric) == 63
        and rubric["00"].startswith("General and overarching")
        and rubric["97"] == "Mathematics education"
    )
    assert parse_code("The answer is 11 (Number theory).", rubric) == "11"
    assert parse_code("2024 is not a code; 99 neither; 05", rubric) == "05"
    assert parse_code("no code here", rubric) is None


def test_cli_config_file_and_overrides(tmp_path, pool):
    from thinkube.cli import build_parser

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("pools: {numina: %s}\ntarget_size: 50\ndomain_column: d\nseed: 4\n" % pool["pools"]["numina"])
    args = build_parser().parse_args(
        [
            "curate",
            "--config",
            str(cfg_file),
            "--pool",
            f"aime={pool['pools']['aime']}",
            "--column-map",
            "numina:question=problem,domain=domain_code",
            "--decontaminate",
            pool["decontaminate"]["aime24"],
            "--base-model",
            "http://h:1@m1",
            "--base-model",
            "http://h:2/v1@m2",
            "--target-size",
            "7",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    cfg = resolve_config(args)
    assert cfg.pools == {"numina": pool["pools"]["numina"], "aime": pool["pools"]["aime"]}
    assert cfg.column_maps == {"numina": {"question": "problem", "domain": "domain_code"}}
    assert cfg.decontaminate == {"bench": pool["decontaminate"]["aime24"]}
    assert (cfg.target_size, cfg.seed, cfg.domain_column) == (7, 4, "d")
    assert [str(cfg.base_model(i)) for i in range(2)] == ["http://h:1@m1", "http://h:2/v1@m2"]


def test_cli_bad_options_exit_2(tmp_path, capsys, pool):
    from thinkube.cli import main

    assert main(["curate", "--pool", f"n={pool['pools']['numina']}", "--out", str(tmp_path / "o")]) == 2
    assert (
        "judge: set judge (URL@MODEL, classifies questions into MSC domains; --judge) or domainColumn"
        in capsys.readouterr().err
    )
    assert main(["curate", "--pool", "n=x", "--domain-column", "d", "--base-model", "nourl", "--out", "o"]) == 2
    assert "--base-model 'nourl': use URL@MODEL" in capsys.readouterr().err
    assert (
        main(
            [
                "curate",
                "--pool",
                "n=x",
                "--domain-column",
                "d",
                "--base-model",
                "http://a@m",
                "--base-model",
                "http://b@m",
                "--out",
                "o",
            ]
        )
        == 2
    )
    assert "distinct model names" in capsys.readouterr().err


def test_save_records_round_trip_keeps_provenance(tmp_path):
    r = S1Record(question="q", id="1")
    r.extra["curation"] = {"source": "p", "index": 0}
    save_records([r], tmp_path / "x.parquet")
    assert load_records(tmp_path / "x.parquet")[0].extra["curation"] == {"source": "p", "index": 0}
