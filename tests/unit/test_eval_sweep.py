"""Sweeps against real HTTP servers on 127.0.0.1 (uvicorn in a thread).

`stand_in_app` is a stand-in for `thinkube serve` until the serving issue lands: a tiny
FastAPI app that follows the server contract (POST /v1/chat/completions with the
budget-forcing fields; answer in message.content, thinking in message.reasoning_content,
usage.completion_tokens_details.reasoning_tokens) and answers "Compute A + B." questions
deterministically: it "thinks" 20 + (A + B) % 50 tokens, +16 per num_ignore extension,
capped by max_thinking_tokens, and gets the sum right only with >= 30 thinking tokens
(at temperature > 0, seeds divisible by 4 flip the outcome). It logs every request so the
tests can check that a resumed sweep never asks for the same sample twice.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path

import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from thinkube.cli import main
from thinkube.workloads.evaluation.benchmarks import load_benchmark
from thinkube.workloads.evaluation.records import record_path
from thinkube.workloads.evaluation.report import PLOT_PNG, RESULTS_JSON, RESULTS_MD, build_results
from thinkube.workloads.evaluation.settings import BudgetSetting, budget_grid
from thinkube.workloads.evaluation.sweep import Sweep, SweepConfig, SweepConflict
from thinkube.workloads.evaluation.targets import HTTPTarget, make_target
from thinkube.workloads.formats import S1_FORMAT
from thinkube.workloads.grading.judge import LLMJudge, parse_verdict
from thinkube.workloads.llm.reply import LLMError

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"


def stand_in_app(delay_s: float = 0.0) -> FastAPI:
    app = FastAPI()
    app.state.requests = []

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "stand-in", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        app.state.requests.append(body)
        prompt = body["messages"][-1]["content"]
        a, b = map(int, re.search(r"Compute (\d+) \+ (\d+)", prompt).groups())
        thinking = 20 + (a + b) % 50 + 16 * body.get("num_ignore", 0)
        if body.get("max_thinking_tokens") is not None:
            thinking = min(thinking, body["max_thinking_tokens"])
        right = thinking >= 30
        if body.get("temperature", 0) > 0 and body.get("seed", 1) % 4 == 0:
            right = not right
        value = a + b if right else a + b + 1
        options = dict(re.findall(r"^([A-D])\) (\S+)$", prompt, re.MULTILINE))
        if options:
            answer = "Answer: " + next(k for k, v in options.items() if v == str(value))
        else:
            answer = f"So the sum is \\boxed{{{value}}}."
        await asyncio.sleep(delay_s)
        thought = " ".join(["step"] * thinking)
        if body["model"] == "plain":  # an endpoint without reasoning fields: everything in content
            message = {
                "role": "assistant",
                "content": f"{S1_FORMAT.think_start}\n{thought}\n{S1_FORMAT.answer_start}\n{answer}",
            }
            usage = {"completion_tokens": thinking + 6}
        else:
            message = {"role": "assistant", "content": answer, "reasoning_content": thought}
            usage = {"completion_tokens": thinking + 6, "completion_tokens_details": {"reasoning_tokens": thinking}}
        return {
            "id": "x",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage,
        }

    return app


class Served:
    """Run an ASGI app with uvicorn in a daemon thread on a free 127.0.0.1 port."""

    def __init__(self, app):
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Served":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def serve():
    started = []

    def start(app) -> Served:
        s = Served(app).__enter__()
        started.append(s)
        return s

    yield start
    for s in started:
        s.__exit__()


def _benchmarks():
    return [
        load_benchmark("aime24", str(DATA / "aime_layout.jsonl")),
        load_benchmark("gpqa_diamond", str(DATA / "gpqa_layout.csv")),
    ]


def _sweep(url: str, out: Path, cfg: SweepConfig, settings=None, judge=None) -> Sweep:
    return Sweep(
        HTTPTarget(url), _benchmarks(), settings or budget_grid([24], [1]), cfg, out, judge=judge, progress=False
    )


def _request_key(body: dict) -> tuple:
    fields = tuple(sorted((k, v) for k, v in body.items() if k not in ("messages", "model")))
    return body["messages"][-1]["content"], fields


def _strip_sweep_meta(results: dict) -> dict:
    return {k: v for k, v in results.items() if k != "sweep"}


def test_sweep_cancelled_midway_resumes_without_repeating_any_request(serve, tmp_path):
    server = serve(stand_in_app(delay_s=0.01))
    cfg = SweepConfig(n=2, temperature=0.7, concurrency=4)
    total = (6 + 4) * 3 * 2  # items x settings x samples

    async def interrupted():
        task = asyncio.create_task(_sweep(server.url, tmp_path / "b", cfg).run())
        while len(server.app.state.requests) < 20:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    first_part = len(server.app.state.requests)
    recorded = sum(1 for f in (tmp_path / "b" / "records").rglob("*.jsonl") for _ in f.open())
    assert 20 <= first_part < total and recorded == first_part  # requests in flight were finished and recorded
    assert asyncio.run(_sweep(server.url, tmp_path / "b", cfg).run()) == total - first_part
    keys = [_request_key(b) for b in server.app.state.requests]
    assert len(keys) == total and len(set(keys)) == total  # every sample asked for exactly once

    server.app.state.requests.clear()
    assert asyncio.run(_sweep(server.url, tmp_path / "a", cfg).run()) == total  # one uninterrupted run
    assert _strip_sweep_meta(build_results(tmp_path / "b")) == _strip_sweep_meta(build_results(tmp_path / "a"))
    assert asyncio.run(_sweep(server.url, tmp_path / "a", cfg).run()) == 0  # finished: nothing left to ask


def test_records_hold_prompt_thinking_answer_verdict_and_tokens(serve, tmp_path):
    server = serve(stand_in_app())
    asyncio.run(_sweep(server.url, tmp_path, SweepConfig(), settings=[BudgetSetting(max_thinking_tokens=24)]).run())
    [body] = [b for b in server.app.state.requests if "12 + 30" in b["messages"][-1]["content"]]
    assert body["max_thinking_tokens"] == 24 and body["temperature"] == 0.0 and "num_ignore" not in body
    record = json.loads(record_path(tmp_path, "aime24", "max24").read_text().splitlines()[0])
    assert record["item_id"] == "arith-0" and "Compute 12 + 30." in record["prompt"]
    assert record["thinking_tokens"] == 24 and record["answer_tokens"] == 6 and record["thinking"].startswith("step")
    assert (record["answer"], record["extracted"], record["correct"]) == ("So the sum is \\boxed{43}.", "43", False)
    assert record["budget"] == {"max_thinking_tokens": 24} and record["unextracted"] is False


def test_torn_last_line_is_repaired_and_only_that_sample_redone(serve, tmp_path):
    server = serve(stand_in_app())
    settings = [BudgetSetting()]
    asyncio.run(_sweep(server.url, tmp_path, SweepConfig(), settings=settings).run())
    path = record_path(tmp_path, "aime24", "none")
    data = path.read_bytes()
    path.write_bytes(data[:-25])  # a crash in the middle of writing the last record
    server.app.state.requests.clear()
    assert asyncio.run(_sweep(server.url, tmp_path, SweepConfig(), settings=settings).run()) == 1
    assert len(server.app.state.requests) == 1
    assert [json.loads(line)["item_id"] for line in path.read_text().splitlines()].count("arith-5") == 1


def test_resuming_with_other_fixed_options_is_refused(serve, tmp_path):
    server = serve(stand_in_app())
    asyncio.run(_sweep(server.url, tmp_path, SweepConfig(), settings=[BudgetSetting()]).run())
    with pytest.raises(SweepConflict, match=r"temperature: 0.0 -> 1.0"):
        asyncio.run(_sweep(server.url, tmp_path, SweepConfig(temperature=1.0), settings=[BudgetSetting()]).run())


def test_curves_from_a_sweep_follow_the_budgets(serve, tmp_path):
    server = serve(stand_in_app())
    asyncio.run(_sweep(server.url, tmp_path, SweepConfig(), settings=budget_grid([8, 24, 48], [1, 2])).run())
    curves = build_results(tmp_path)["benchmarks"]["aime24"]["curves"]
    assert curves["max_thinking_tokens"]["control"] == 100.0  # the stand-in honours every maximum
    assert curves["max_thinking_tokens"]["scaling"] > 0 and curves["num_ignore"]["scaling"] > 0
    assert curves["max_thinking_tokens"]["settings"][0] == "max8"


def test_cli_with_config_file_writes_reports(serve, tmp_path):
    server = serve(stand_in_app())
    config = tmp_path / "eval.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "target": server.url,
                "out": str(tmp_path / "out"),
                "max_thinking_tokens": [24, 48],
                "num_ignore": "1",
                "benchmarks": {
                    "aime24": str(DATA / "aime_layout.jsonl"),
                    "gpqa_diamond": str(DATA / "gpqa_layout.csv"),
                },
                "samples": 3,
                "concurrency": 2,
            }
        )
    )
    assert main(["eval", "--config", str(config), "--samples", "1", "--no-progress"]) == 0  # the command line wins
    out = tmp_path / "out"
    results = json.loads((out / RESULTS_JSON).read_text())
    assert set(results["benchmarks"]) == {"aime24", "gpqa_diamond"}
    assert results["sweep"]["config"]["n"] == 1
    assert set(results["benchmarks"]["aime24"]["settings"]) == {"none", "max24", "max48", "ignore1"}
    md = (out / RESULTS_MD).read_text()
    assert "## gpqa_diamond (4 items, n = 1)" in md and "budget forcing (max thinking tokens)" in md
    assert (out / PLOT_PNG).read_bytes()[:4] == b"\x89PNG"
    assert len(server.app.state.requests) == 10 * 4
    assert main(["eval", "--out", str(out), "--report-only"]) == 0


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert (
        main(
            [
                "eval",
                "--target",
                "http://127.0.0.1:9",
                "--out",
                str(tmp_path),
                "--benchmark",
                f"aime24={tmp_path / 'nope.jsonl'}",
            ]
        )
        == 2
    )
    assert "HuggingFaceH4/aime_2024" in capsys.readouterr().err
    assert main(["eval", "--out", str(tmp_path), "--benchmark", "aime24=x.jsonl"]) == 2
    assert "thinkube eval: target is required (--target)" in capsys.readouterr().err
    assert main(["eval", "--target", "http://127.0.0.1:9", "--out", str(tmp_path), "--benchmark", "aime24"]) == 2
    assert "use NAME=PATH" in capsys.readouterr().err
    config = tmp_path / "c.yaml"
    config.write_text("temprature: 1\n")
    assert main(["eval", "--config", str(config)]) == 2
    assert "unknown setting(s) temprature" in capsys.readouterr().err


def canned_judge_app() -> FastAPI:
    """A fake for a remote LLM judge (any OpenAI-compatible endpoint): canned verdicts,
    CORRECT when the reference answer's text appears in the response, else INCORRECT."""
    app = FastAPI()
    app.state.calls = 0

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        app.state.calls += 1
        prompt = body["messages"][0]["content"]
        reference = re.search(r"Reference answer:\n(.*)\n", prompt).group(1)
        response = prompt.split("Response:\n", 1)[1]
        verdict = "CORRECT" if reference in response else "INCORRECT"
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"Verdict: {verdict}"}}]}

    return app


def test_judge_verdicts_are_recorded_next_to_the_offline_grade(serve, tmp_path):
    server, judge_server = serve(stand_in_app()), serve(canned_judge_app())
    benchmarks = [load_benchmark("aime24", str(DATA / "aime_layout.jsonl"))]

    async def go():
        judge = LLMJudge(judge_server.url, "judge-model")
        try:
            await Sweep(
                HTTPTarget(server.url),
                benchmarks,
                [BudgetSetting()],
                SweepConfig(),
                tmp_path,
                judge=judge,
                progress=False,
            ).run()
        finally:
            await judge.aclose()

    asyncio.run(go())
    assert judge_server.app.state.calls == 6
    summary = build_results(tmp_path)["benchmarks"]["aime24"]["settings"]["none"]
    assert summary["judge"]["judged"] == 6
    # The canned judge's substring rule and the offline grader agree on these answers.
    assert summary["judge"]["accuracy"] == summary["accuracy"] and summary["judge"]["agreement"] == 100.0


def test_parse_verdict():
    assert parse_verdict("CORRECT") is True and parse_verdict("The answer is incorrect.") is False
    assert parse_verdict("Hmm, INCORRECT? No: CORRECT") is True and parse_verdict("no idea") is None


def flaky_app(failures: int, status: int, message: str) -> FastAPI:
    app = FastAPI()
    app.state.calls = 0

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        app.state.calls += 1
        if app.state.calls <= failures:
            return JSONResponse({"error": {"message": message}}, status_code=status)
        return {
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "\\boxed{1}"}, "finish_reason": "length"}
            ]
        }

    return app


def test_http_target_retries_transient_errors_and_fails_fast_on_client_errors(serve):
    async def one(url: str, **kw):
        target = HTTPTarget(url, model="m", retry_backoff_s=0.01, **kw)
        try:
            return await target.generate([{"role": "user", "content": "q"}], BudgetSetting(), n=2, seed=5)
        finally:
            await target.aclose()

    transient = serve(flaky_app(2, 503, "warming up"))
    gens = asyncio.run(one(transient.url))
    assert [g.answer for g in gens] == ["\\boxed{1}"] * 2 and gens[0].thinking_tokens is None
    assert gens[0].finish_reason == "length" and transient.app.state.calls == 4
    rejected = serve(flaky_app(99, 400, "max_thinking_tokens: must be <= 131072"))
    with pytest.raises(LLMError, match="HTTP 400.*max_thinking_tokens"):
        asyncio.run(one(rejected.url))
    # None retried: at most one call per sample (the first refusal cancels a sibling not yet sent).
    assert 1 <= rejected.app.state.calls <= 2
    down = serve(flaky_app(99, 503, "down"))
    with pytest.raises(LLMError, match="after 3 attempts"):
        asyncio.run(one(down.url, max_retries=2))


def test_chat_format_splits_servers_without_reasoning_fields(serve):
    server = serve(stand_in_app())

    async def go():
        target = HTTPTarget(server.url + "/v1/", model="plain", chat_format=S1_FORMAT)
        try:
            return await target.generate([{"role": "user", "content": "Compute 1 + 2."}], BudgetSetting())
        finally:
            await target.aclose()

    [gen] = asyncio.run(go())
    assert gen.thinking.startswith("step") and gen.answer == "So the sum is \\boxed{4}."
    assert gen.thinking_tokens is None and gen.answer_tokens is None


def test_make_target_takes_server_urls_and_says_how_to_serve_a_model():
    with pytest.raises(ValueError, match="thinkube serve --model tiny"):
        make_target("tiny")
    assert isinstance(make_target("http://127.0.0.1:1"), HTTPTarget)
