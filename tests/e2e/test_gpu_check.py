"""benchmarks/gpu.py's CPU mode, end to end, so that the GPU check still runs when a GPU
machine is lent: the same parts (FSDP2 over 2 gloo processes, all-reduce, budget forcing vs
plain on the transformers engine), tiny shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~1 min on 2 cores: two processes importing torch and transformers, then the parts
def test_gpu_check_cpu_mode(tmp_path):
    out = tmp_path / "figures.json"
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--cpu", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for title in ("1. FSDP2 training step", "2. all-reduce", "3. budget forcing", "elapsed:"):
        assert title in r.stdout
    f = json.loads(out.read_text())
    assert f["mode"] == "cpu" and f["processes"] == 2

    t = f["training"]
    assert t["model"] == "tiny" and t["dtype"] == "float32" and t["processes"] == 2
    assert t["tokens_per_s"] > 0 and t["step_s"] > 0 and 0 < t["vs_matmul"]
    assert t["mfu"] == "n/a" and t["peak_TFLOPs"] == "n/a" and t["peak_memory_GiB"] == "n/a"

    a = f["allreduce"]
    assert a["backend"] == "gloo" and a["ranks"] == 2 and a["inter_process_traffic"]
    assert a["algbw_GBps"] > 0 and a["busbw_GBps"] == pytest.approx(a["algbw_GBps"])  # 2(n-1)/n = 1 for n = 2
    assert a["copy_GBps"] > 0

    s = f["serving"]
    assert s["engine"] == "transformers" and s["device"] == "cpu" and s["pairs"] >= 1
    assert s["bf_tps"] > 0 and s["plain_tps"] > 0 and s["ratio"] > 0
    # The random model tries to end its thinking (make_it_end_thinking), so num_ignore=2 extends:
    # at most 2 per request, and the transformers engine re-prefills the context at each.
    assert 0 < s["extensions"] <= 2 * s["requests"]
    assert s["engine_requests"] > s["requests"] and s["prefill_per_extension"] > 0
    for part in (t, a, s):
        assert part["elapsed_s"] > 0
