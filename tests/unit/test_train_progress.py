"""Training progress: metrics.jsonl rows, the best-effort POST, and what the progress helper shows."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from thinkube.workloads.training.progress import METRICS_FILE, Progress

ROW = {"step": 1, "loss": 2.5, "lr": 1e-5, "grad_norm": 0.5, "tokens": 1000, "step_seconds": 0.5, "epoch": 0}


def test_rows_are_written_and_posted(tmp_path, caplog):
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        p = Progress(tmp_path, total_steps=4, start_step=0, url=f"http://127.0.0.1:{server.server_port}/metrics")
        with caplog.at_level(logging.INFO):
            for step in range(1, 5):
                p.step({**ROW, "step": step})
    finally:
        server.shutdown()
    rows = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert rows[0]["tokens_per_s"] == 2000 and rows[0]["total_steps"] == 4 and "eta_s" in rows[0]
    assert got == rows and [r["step"] for r in rows] == [1, 2, 3, 4]
    # Shown through the progress helper: a line at most every 10 s and at the last step, not one per step.
    assert "train: 2/4 steps" not in caplog.text
    assert "train: 4/4 steps" in caplog.text and "loss 2.5000 lr 1.000e-05" in caplog.text
    assert "tokens/s 2000 eta 0:00:00" in caplog.text


def test_post_failure_is_one_warning_not_an_error(tmp_path, caplog):
    p = Progress(tmp_path, total_steps=4, start_step=0, url="http://127.0.0.1:9/unreachable")
    with caplog.at_level(logging.WARNING):
        p.step(ROW)
        p.step({**ROW, "step": 2})
    assert caplog.text.count("metrics POST") == 1
    assert len((tmp_path / METRICS_FILE).read_text().splitlines()) == 2
