"""`thinkube curate` against real HTTP servers on 127.0.0.1: the built-in tiny model behind
the budget-forcing server as one base model, and stand-in FastAPI apps for a strong remote
base model (it answers the planted easy questions correctly from a lookup) and for the
domain judge. Request counts are taken on the server side."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from fastapi import FastAPI

from tests.support.servers import ThreadServer, free_port, wait_healthy
from tests.unit.test_curate_stages import config, stage_ids, write_pool
from thinkube.workloads.curation.pipeline import CACHE_FILE, Pipeline, run
from thinkube.workloads.formats import load_records


def _reply(text: str) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


def lookup_app(answer_for, calls: Counter, delay_s: float = 0.0) -> FastAPI:
    """A fake remote model: answers from `answer_for(problem text)`; counts each question asked."""
    app = FastAPI()

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        text = body["messages"][0]["content"]
        calls[text] += 1
        await asyncio.sleep(delay_s)
        return _reply(answer_for(text, len(body["messages"])))

    return app


class CountingASGI:
    """Counts chat requests reaching a real app (the tiny-model server)."""

    def __init__(self, app):
        self.app, self.calls = app, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].endswith("/chat/completions"):
            self.calls += 1
        await self.app(scope, receive, send)


@pytest.fixture
def pool(tmp_path):
    return write_pool(tmp_path)


def oracle(pool: dict):
    questions = {pool["questions"][i]: answer for i, answer in pool["easy"].items()}
    return lambda prompt, _: next((a for q, a in questions.items() if q in prompt), "I do not know.")


@pytest.fixture(scope="module")
def tiny_server():
    from thinkube.workloads.formats import S1_FORMAT
    from thinkube.workloads.serving.app import ServerConfig, create_app
    from thinkube.workloads.serving.engines.hf import TransformersEngine
    from thinkube.workloads.tiny_model import ensure_tiny_model

    app = CountingASGI(create_app(TransformersEngine(str(ensure_tiny_model()), "tiny"), ServerConfig(fmt=S1_FORMAT)))
    with ThreadServer(app) as srv:
        wait_healthy(srv.url, 60)
        srv.counter = app
        yield srv


def test_difficulty_drops_questions_any_base_model_solves(pool, tmp_path, tiny_server):
    calls = Counter()
    with ThreadServer(lookup_app(oracle(pool), calls)) as strong:
        out = tmp_path / "run"
        before = tiny_server.counter.calls
        data = run(
            config(
                pool,
                out,
                base_models=[f"{tiny_server.url}@tiny", f"{strong.url}/v1@strong"],
                max_tokens=8,
                tokenizer="tiny",
                target_size=11,
                concurrency=4,
            )
        )
    assert stage_ids(out, "difficulty", dropped=True) == set(pool["easy"])
    assert tiny_server.counter.calls - before == 14 and sum(calls.values()) == 14  # one call per question and model
    difficulty = next(s for s in data["stages"] if s["stage"] == "difficulty")
    assert difficulty["info"]["solved_by"] == {"tiny": 0, "strong": 3}
    rows = {r.id: r for r in load_records(out / "selected.jsonl")}
    assert len(rows) == 11 and not set(pool["easy"]) & set(rows)
    decision = rows["a-1"].extra["curation"]["decisions"]["difficulty"]
    assert decision["strong"] == {"kind": "integer", "extracted": None, "correct": False, "method": "unextracted"}
    assert decision["tiny"]["correct"] is False and decision["tiny"]["kind"] == "integer"
    # Trace tokens counted with the tiny tokenizer.
    from transformers import AutoTokenizer

    from thinkube.workloads.tiny_model import ensure_tiny_model

    tok = AutoTokenizer.from_pretrained(str(ensure_tiny_model()))
    a1 = rows["a-1"]
    assert a1.extra["curation"]["trace_tokens"] == len(tok(a1.thinking, add_special_tokens=False)["input_ids"])
    assert data["trace_counter"] == "tiny"


def test_killed_difficulty_stage_resumes_without_repeating_calls(pool, tmp_path):
    calls = Counter()
    with ThreadServer(lookup_app(oracle(pool), calls, delay_s=0.05)) as strong:
        cfg = config(pool, tmp_path / "run", base_models=[f"{strong.url}@strong"], concurrency=2, target_size=11)
        cache = tmp_path / "run" / CACHE_FILE

        async def kill_midway():
            task = asyncio.create_task(Pipeline(cfg).run())
            while not (cache.exists() and len(cache.read_text().splitlines()) >= 5):
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(kill_midway())
        finished = len(cache.read_text().splitlines())
        first_run = sum(calls.values())
        assert 5 <= finished < 14 and not (tmp_path / "run" / "stages" / "06_difficulty.done.json").exists()
        run(cfg)
    second_run = sum(calls.values()) - first_run
    assert second_run == 14 - finished  # every finished call came from the cache
    assert len(cache.read_text().splitlines()) == 14
    assert stage_ids(tmp_path / "run", "difficulty", dropped=True) == set(pool["easy"])


def test_unreachable_base_model_names_url_and_keeps_progress(pool, tmp_path, capsys):
    from thinkube.cli import main

    url = f"http://127.0.0.1:{free_port()}"
    out = tmp_path / "run"
    rc = main(
        [
            "curate",
            "--pool",
            f"numina={pool['pools']['numina']}",
            "--column-map",
            "numina:question=problem",
            "--domain-column",
            "domain_code",
            "--base-model",
            f"{url}@m",
            "--max-retries",
            "1",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert f"POST {url}/v1/chat/completions failed after 2 attempts" in err and "rerun the same command" in err
    assert (out / "stages" / "05_trace.done.json").exists()  # the stages before it are kept


def judge_answer(prompt: str, n_messages: int) -> str:
    problem = prompt.split("Problem:\n", 1)[1]
    if "odd" in problem or "divisors" in problem:
        return "11"
    if "area" in problem:
        return "This is geometry: 51"
    return "I cannot tell."


def test_judge_classifies_msc_domains_with_bounded_retries(pool, tmp_path):
    calls = Counter()
    with ThreadServer(lookup_app(judge_answer, calls)) as judge:
        cfg = config(
            pool, tmp_path / "run", domain_column=None, judge=f"{judge.url}@judge", domain_retries=1, target_size=14
        )
        data = run(cfg)
        first = sum(calls.values())
        # 10 questions answered at once, 4 unparseable ones asked twice (1 retry) then "unknown".
        assert first == 10 + 4 * 2
        assert data["per_domain"] == {"11": 9, "unknown": 4, "51": 1}
        (tmp_path / "run" / "stages" / "07_domains.done.json").unlink()
        run(cfg)  # the stage reruns, every classification comes from the cache
        assert sum(calls.values()) == first
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert next(s for s in report["stages"] if s["stage"] == "domains")["info"]["unknown"] == 4


def test_optional_judge_grades_base_model_answers(pool, tmp_path):
    """With grade_with_judge, a judge verdict replaces the offline grade (both are recorded)."""
    calls, judged = Counter(), Counter()
    verdict = lambda prompt, _: "CORRECT" if "divisors of 2024" in prompt else "INCORRECT"  # noqa: E731
    with ThreadServer(lookup_app(oracle(pool), calls)) as strong, ThreadServer(lookup_app(verdict, judged)) as judge:
        cfg = config(
            pool,
            tmp_path / "run",
            base_models=[f"{strong.url}@strong"],
            judge=f"{judge.url}@judge",
            grade_with_judge=True,
            target_size=13,
        )
        run(cfg)
    assert stage_ids(tmp_path / "run", "difficulty", dropped=True) == {"a-1"}
    assert sum(judged.values()) == 14
    kept = {r.id: r for r in load_records(tmp_path / "run" / "stages" / "06_difficulty.jsonl")}
    entry = kept["n-easy-1"].extra["curation"]["decisions"]["difficulty"]["strong"]
    assert entry["judge"] is False and entry["correct"] is False and entry["method"] == "string"
