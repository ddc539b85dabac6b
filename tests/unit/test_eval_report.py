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


def test_labels_of_points_close_together_do_not_overprint():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from thinkube.workloads.evaluation.report import place_labels, point_labels

    points = [
        ("max40", 40.0, 66.7),
        ("none", 40.0, 66.7),  # coincides with max40: one label
        ("ignore1", 46.0, 98.3),
        ("ignore2", 50.0, 97.5),  # a few tokens and a point away from ignore1
        ("max-ignore", 47.0, 97.9),
        ("max4", 4.0, 0.0),
    ]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([p[1] for p in points], [p[2] for p in points], "o")
    ax.set_xscale("log", base=2)
    fig.tight_layout()
    labels = point_labels(points)
    renderer = fig.canvas.get_renderer()
    # Where every label sat at the same offset, these overprinted.
    naive = [ax.annotate(t, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7) for t, x, y in labels]
    naive_boxes = [n.get_window_extent(renderer) for n in naive]
    assert any(a.overlaps(b) for i, a in enumerate(naive_boxes) for b in naive_boxes[i + 1 :])
    for n in naive:
        n.remove()
    notes = place_labels(ax, labels)
    assert sorted(n.get_text() for n in notes) == ["ignore1", "ignore2", "max-ignore", "max4", "max40, none"]
    boxes = [n.get_window_extent(renderer) for n in notes]
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]
    assert all(b.x1 <= ax.get_window_extent().x1 for b in boxes)  # the rightmost labels turn left, not off the plot
    plt.close(fig)
