"""The distill stage against real HTTP servers on 127.0.0.1: a scripted OpenAI-compatible
teacher (each question says how it behaves: trace style, 429s, refusals) and the demo's
synthetic teacher served by `thinkube serve`'s app."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.support.servers import ThreadServer
from thinkube.api.stages.curate import CurateConfig, TeacherConfig
from thinkube.workloads.curation.pipeline import run as curate
from thinkube.workloads.formats import S1Record, load_records, save_records


def scripted_teacher(delay_s: float = 0.0):
    """Questions look like "<behaviour> <n>"; the reference answer is n, and the teacher
    answers n, except for "wrong" questions (n + 1)."""
    app = FastAPI()
    app.state.calls, app.state.times, app.state.keys = Counter(), {}, []

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        app.state.keys.append(request.headers.get("authorization"))
        question = body["messages"][-1]["content"]
        behaviour, n = question.split()
        app.state.calls[question] += 1
        app.state.times.setdefault(question, []).append(time.monotonic())
        if delay_s:
            time.sleep(delay_s)  # blocks the server: calls are served one at a time
        if behaviour == "limited" and app.state.calls[question] == 1:
            return JSONResponse({"error": {"message": "rate limited"}}, status_code=429, headers={"Retry-After": "1"})
        if behaviour == "refused":
            return JSONResponse({"error": {"message": "content policy"}}, status_code=400)
        answer = int(n) + (behaviour == "wrong")
        thinking, attempt = f"Let me think about {n}.\nIt is {answer}.", f"Final Answer: \\boxed{{{answer}}}"
        usage = {"prompt_tokens": 7, "completion_tokens": 20, "completion_tokens_details": {"reasoning_tokens": 12}}
        if behaviour == "cut":
            message, reason = {"role": "assistant", "content": "", "reasoning_content": thinking}, "length"
        elif behaviour == "tags":
            message, reason = {"role": "assistant", "content": f"<think>{thinking}</think>\n{attempt}"}, "stop"
        else:
            message, reason = {"role": "assistant", "content": attempt, "reasoning_content": thinking}, "stop"
        return {"choices": [{"index": 0, "message": message, "finish_reason": reason}], "usage": usage}

    return app


def _pool(path, questions: list[str], traced: dict[str, str] | None = None):
    rows = [
        S1Record(
            id=f"q{i}",
            question=q,
            solution=q.split()[1],
            thinking=(traced or {}).get(q),
            attempt="Final Answer: \\boxed{0}" if q in (traced or {}) else None,
            domain="d",
            source_type="src",
        )
        for i, q in enumerate(questions)
    ]
    save_records(rows, path)
    return path


def _config(tmp_path, url: str, pool, **teacher) -> CurateConfig:
    return CurateConfig(
        out=str(tmp_path / "out"),
        pools={"pool": str(pool)},
        domain_column="domain",
        target_size=1000,
        allow_smaller=True,
        max_retries=1,
        backoff_s=0.05,
        auto_include=[{"source": "src"}],
        teacher=TeacherConfig(endpoint=f"{url}@teacher", **teacher),
    )


QUESTIONS = ["reasoning 1", "tags 2", "wrong 3", "limited 4", "refused 5", "cut 6", "kept 7"]


def test_traces_from_both_reply_styles_failures_dropped_grades_drive_auto_include(tmp_path, monkeypatch):
    monkeypatch.setenv("THINKUBE_TEACHER_API_KEY", "sk-test-secret")
    pool = _pool(tmp_path / "pool.jsonl", QUESTIONS, traced={"kept 7": "pool trace"})
    app = scripted_teacher()
    with ThreadServer(app) as server:
        report = curate(_config(tmp_path, server.url, pool, concurrency=4))
    stages = {s["stage"]: s for s in report["stages"]}
    info = stages["distill"]["info"]
    assert info["asked"] == 6 and info["failed"] == 2 and info["calls_made"] == 5
    assert info["failures"] == {"HTTP 400": 1, "cut at max_tokens 32768": 1}
    assert stages["quality"]["dropped"] == {"teacher_failed": 2}
    assert info["tokens_in"] == 35 and info["tokens_out"] == 100 and info["rate_limit_pauses"] == 1
    # The 429's Retry-After (1 s) was waited out before the retry.
    first, second = app.state.times["limited 4"]
    assert second - first >= 0.95
    assert set(app.state.keys) == {"Bearer sk-test-secret"}

    rows = {r.question: r for r in load_records(tmp_path / "out" / "selected.jsonl")}
    assert set(rows) == {"reasoning 1", "tags 2", "wrong 3", "limited 4", "kept 7"}
    assert (
        rows["reasoning 1"].thinking == "Let me think about 1.\nIt is 1." == rows["tags 2"].thinking.replace("2", "1")
    )
    assert rows["tags 2"].attempt == "Final Answer: \\boxed{2}"
    assert rows["kept 7"].thinking == "pool trace"  # a row with a trace is not asked
    # The teacher's grade decides auto-inclusion: its wrong attempt is drawn like any row, not auto-included.
    how = {q: r.extra["curation"]["decisions"]["select"]["how"] for q, r in rows.items()}
    assert how["wrong 3"] != "auto" and how["reasoning 1"] == how["tags 2"] == "auto"
    assert rows["wrong 3"].extra["teacher_correct"] is False and rows["reasoning 1"].extra["teacher_correct"] is True
    dropped = [
        json.loads(line)
        for line in (tmp_path / "out" / "stages").glob("*quality.dropped.jsonl").__next__().read_text().splitlines()
    ]
    errors = {d["question"]: d["extra"]["curation"]["decisions"]["quality"]["error"] for d in dropped}
    assert "HTTP 400" in errors["refused 5"] and "content policy" in errors["refused 5"]
    assert errors["cut 6"].startswith("cut at max_tokens")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Distillation" in text and "sk-test-secret" not in text
    assert "sk-test-secret" not in (tmp_path / "out" / "config.json").read_text()


def test_regenerate_replaces_existing_traces(tmp_path):
    pool = _pool(tmp_path / "pool.jsonl", ["reasoning 1", "kept 7"], traced={"kept 7": "pool trace"})
    app = scripted_teacher()
    with ThreadServer(app) as server:
        curate(_config(tmp_path, server.url, pool, regenerate=True))
    rows = {r.question: r for r in load_records(tmp_path / "out" / "selected.jsonl")}
    assert rows["kept 7"].thinking == "Let me think about 7.\nIt is 7." and app.state.calls["kept 7"] == 1


def test_token_budget_stops_the_calls_and_a_larger_one_goes_on(tmp_path):
    questions = [f"reasoning {i}" for i in range(6)]
    pool = _pool(tmp_path / "pool.jsonl", questions)
    app = scripted_teacher()
    with ThreadServer(app) as server:
        report = curate(_config(tmp_path, server.url, pool, concurrency=1, max_total_tokens=45))
        info = next(s for s in report["stages"] if s["stage"] == "distill")["info"]
        # Each call spends 27 tokens: the second one crosses 45, and nothing is sent after it.
        assert sum(app.state.calls.values()) == 2 and info["failures"] == {"token budget spent": 4}
        assert info["tokens_in"] + info["tokens_out"] == 54
        report = curate(_config(tmp_path, server.url, pool, concurrency=1, max_total_tokens=1000))
    assert sum(app.state.calls.values()) == 6 and len(load_records(tmp_path / "out" / "selected.jsonl")) == 6


def test_killed_run_resumes_without_repeating_calls(tmp_path):
    questions = [f"reasoning {i}" for i in range(12)]
    pool = _pool(tmp_path / "pool.jsonl", questions)
    app = scripted_teacher(delay_s=0.25)
    with ThreadServer(app) as server:
        cmd = [
            sys.executable,
            "-m",
            "thinkube.cli",
            "curate",
            "--pool",
            f"pool={pool}",
            "--domain-column",
            "domain",
            "--allow-smaller",
            "--out",
            str(tmp_path / "out"),
            "--teacher",
            f"{server.url}@teacher",
            "--teacher-concurrency",
            "1",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while sum(app.state.calls.values()) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        served_before = sum(app.state.calls.values())
        assert 5 <= served_before < len(questions)
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
    # Every question was asked once, but for the one call in flight when the run was killed.
    assert set(app.state.calls) == set(questions)
    assert sum(app.state.calls.values()) - len(questions) <= 1
    assert "calls cached" in again.stderr


@pytest.fixture(scope="module")
def demo_teacher():
    from thinkube.workloads.demo.teacher import ENGINE, SyntheticTeacher
    from thinkube.workloads.formats.chat import S1_FORMAT
    from thinkube.workloads.models import resolve_model
    from thinkube.workloads.serving.app import ServerConfig, create_app

    app = create_app(SyntheticTeacher(resolve_model("tiny")[0], ENGINE), ServerConfig(fmt=S1_FORMAT))
    with ThreadServer(app) as server:
        yield server


def test_demo_teacher_is_served_and_distilled_like_any_teacher(tmp_path, demo_teacher):
    """The demo's synthetic teacher over the real server: reasoning_content holds the
    teacher's trace, an unreadable question loops until max_tokens and fails its row."""
    import httpx

    from thinkube.workloads.demo.tasks import Problem, problems

    chosen = problems(6, 3, (1, 10))
    unreadable = chosen[0].question.replace("\nA:", "\nA:?", 1)
    rows = [p.pool_row(f"p{i}") for i, p in enumerate(chosen)] + [
        chosen[0].pool_row("bad").model_copy(update={"question": unreadable})
    ]
    save_records(rows, tmp_path / "pool.jsonl")
    cfg = CurateConfig(
        out=str(tmp_path / "out"),
        pools={"pool": str(tmp_path / "pool.jsonl")},
        domain_column="domain",
        target_size=6,
        answer_kinds={"pool": "integer"},
        teacher=TeacherConfig(endpoint=f"{demo_teacher.url}@demo-teacher", max_tokens=96),
    )
    report = curate(cfg)
    selected = {r.question: r for r in load_records(tmp_path / "out" / "selected.jsonl")}
    for p in chosen:
        assert selected[p.question].thinking == p.trace() and selected[p.question].attempt == p.attempt()
        assert selected[p.question].extra["teacher_correct"] is True
    quality = next(s for s in report["stages"] if s["stage"] == "quality")
    assert quality["dropped"] == {"teacher_failed": 1}
    # Budget forcing applies to the teacher as to any served model: 8 thinking tokens are 2 trace lines.
    long = Problem(chosen[0].domain, (1, 2, 3, 4))
    reply = httpx.post(
        f"{demo_teacher.url}/v1/chat/completions",
        timeout=30,
        json={
            "model": "demo-teacher",
            "messages": [{"role": "user", "content": long.question}],
            "max_thinking_tokens": 8,
        },
    ).json()
    assert reply["choices"][0]["message"]["reasoning_content"] == "\n".join(long.trace().split("\n")[:2])
