"""`thinkube eval` against the real `thinkube serve`, both as subprocesses the way the
operator's pods run them: the transformers engine serving the patterned tiny model (it
thinks "one two three four five six", may continue after "Wait", answers "Answer: 7")."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.patterned_model import patterned_model
from tests.support.servers import ServeProcess


def test_eval_sweeps_budgets_on_the_real_server_and_resumes(tmp_path):
    bench = tmp_path / "pattern.jsonl"
    bench.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"What is question {i}?", "answer": "7"}) + "\n" for i in (3, 99)
        )
    )
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "thinkube.cli",
        "eval",
        "--benchmark",
        f"pattern={bench}",
        "--out",
        str(out),
        "--max-thinking-tokens",
        "4",
        "--num-ignore",
        "1",
        "--max-tokens",
        "100",
        "--no-progress",
    ]
    server = ServeProcess("--model", str(patterned_model()), "--engine", "transformers").wait(180)
    try:
        first = subprocess.run([*cmd, "--target", server.url], capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        records = {f.name: f.read_bytes() for f in (out / "records" / "pattern").glob("*.jsonl")}
        again = subprocess.run([*cmd, "--target", server.url], capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and "6 already recorded, 0 to run" in again.stderr
        assert {f.name: f.read_bytes() for f in (out / "records" / "pattern").glob("*.jsonl")} == records
    finally:
        server.terminate()
    results = json.loads((out / "results.json").read_text())["benchmarks"]["pattern"]
    tokens = {k: s["thinking_tokens"]["max"] for k, s in results["settings"].items()}
    assert tokens["max4"] == 4 < tokens["none"] < tokens["ignore1"]  # forced end, natural end, one "Wait" more
    assert all(s["accuracy"] == 100.0 for s in results["settings"].values())
    assert results["curves"]["max_thinking_tokens"]["control"] == 100.0
