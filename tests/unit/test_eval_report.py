"""Reports built from record files alone: curves per method, Control from per-sample
budgets, Markdown and plot."""

from __future__ import annotations

import json

import pytest

from thinkube.workloads.evaluation.records import RecordFile, record_path
from thinkube.workloads.evaluation.report import PLOT_PNG, RESULTS_JSON, RESULTS_MD, write_reports
from thinkube.workloads.evaluation.settings import BudgetSetting


def _write(out, setting: BudgetSetting, rows):
    f = RecordFile(record_path(out, "bench", setting.key))
    for i, (correct, tokens) in enumerate(rows):
        f.append(
            {
                "item_id": f"q{i}",
                "sample": 0,
                "setting": setting.key,
                "budget": setting.request_fields(),
                "correct": correct,
                "extracted": "1",
                "thinking_tokens": tokens,
                "method": "integer",
            }
        )
    f.close()


def test_report_curves_control_and_files(tmp_path):
    _write(tmp_path, BudgetSetting(), [(True, 300), (True, 500)])  # mean 400, 100 %
    _write(tmp_path, BudgetSetting(max_thinking_tokens=100), [(False, 100), (False, 100)])  # 100, 0 %
    _write(tmp_path, BudgetSetting(max_thinking_tokens=200), [(True, 150), (False, 250)])  # 200, 50 %; 250 > 200
    results = write_reports(tmp_path)
    bench = results["benchmarks"]["bench"]
    assert list(bench["settings"]) == ["max100", "max200", "none"]
    assert set(bench["curves"]) == {"max_thinking_tokens", "all"}  # no num_ignore setting: no extension curve
    curve = bench["curves"]["max_thinking_tokens"]
    assert curve["settings"] == ["max100", "max200", "none"]
    assert curve["control"] == pytest.approx(200 / 3)  # max200 let one sample think 250 tokens
    # slopes: (50-0)/100 = 0.5, (100-0)/300 = 1/3, (100-50)/200 = 0.25
    assert curve["scaling"] == pytest.approx((0.5 + 1 / 3 + 0.25) / 3)
    assert curve["performance"] == 100.0
    assert json.loads((tmp_path / RESULTS_JSON).read_text())["benchmarks"]["bench"]["curves"] == json.loads(
        json.dumps(bench["curves"])
    )
    md = (tmp_path / RESULTS_MD).read_text()
    assert "| max200 | 2 | 50.0 | n/a | n/a | 200.0 | 200.0 | 250 | 50.0 | 0.0 |" in md
    assert f"| 66.7 | {1000 * curve['scaling']:.2f} | 100.0 |" in md
    assert (tmp_path / PLOT_PNG).stat().st_size > 1000


def test_report_without_token_counts_has_no_curves_or_plot(tmp_path):
    _write(tmp_path, BudgetSetting(), [(True, None)])
    _write(tmp_path, BudgetSetting(max_thinking_tokens=64), [(False, None)])
    results = write_reports(tmp_path)
    assert results["benchmarks"]["bench"]["curves"] == {}
    assert not (tmp_path / PLOT_PNG).exists()
    assert "| max64 | 1 | 0.0 | n/a | n/a | n/a | n/a | n/a | n/a | 0.0 |" in (tmp_path / RESULTS_MD).read_text()


def test_coinciding_points_share_one_label():
    from thinkube.workloads.evaluation.report import point_labels

    labels = point_labels(
        [
            ("none", 40.0, 50.0),
            ("max8", 8.0, 10.0),
            ("none", 40.0, 50.0),
            ("ignore1", 40.0, 50.0),
            ("max40", 40.0, 60.0),
        ]
    )
    assert sorted(labels) == [("max40", 40.0, 60.0), ("max8", 8.0, 10.0), ("none, ignore1", 40.0, 50.0)]
