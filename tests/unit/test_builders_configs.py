"""The stage configs the builders write are accepted by the workloads' own config loaders."""
from __future__ import annotations

import argparse
import json

import pytest

from thinkube.operator.builders import Defaults, Resolved
from thinkube.operator.builders import curation, evaluation, sft

D = Defaults(image="img:1")


def body(kind: str, spec: dict) -> dict:
    return {"apiVersion": "thinkube.dev/v1alpha1", "kind": kind, "metadata": {"name": "x", "namespace": "ns", "uid": "u"},
            "spec": spec}


def test_train_config_loads(tmp_path):
    config = pytest.importorskip("thinkube.workloads.training.config")
    cm = sft.build(body("SFTRun", {"baseModel": "tiny", "dataset": {"uri": "file:///d.jsonl"}}),
                   Resolved("file:///d.jsonl", "pvc://out/x"), D)[0]
    path = tmp_path / "config.json"
    path.write_text(cm["data"]["config.json"])
    cfg = config.load_config({}, str(path), environ={})
    assert (cfg.model, cfg.epochs, cfg.block_size, cfg.precision) == ("tiny", 5, 32768, "bf16")


def test_curate_config_loads():
    config = pytest.importorskip("thinkube.workloads.curation.config")
    cm = curation.build(body("CurationJob", {"pools": {"p": "pvc://d/p.jsonl"}, "domainColumn": "domain"}),
                        Resolved(output_uri="pvc://out/x"), D)[0]
    cfg = config.CurateConfig(**json.loads(cm["data"]["config.json"]))
    assert (cfg.out, cfg.target_size, cfg.domain_column) == ("pvc://out/x", 1000, "domain")


def test_eval_config_loads(tmp_path):
    cli = pytest.importorskip("thinkube.workloads.evaluation.cli")
    spec = {"target": {"url": "http://s:8000"}, "benchmarks": [{"name": "aime24", "uri": "file:///a.jsonl"}],
            "numIgnore": [1, 2]}
    cm = evaluation.build(body("EvalSweep", spec), Resolved("http://s:8000", "file:///out"), D)[0]
    path = tmp_path / "benchmark-0.json"
    path.write_text(cm["data"]["benchmark-0.json"])
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    opts = cli.resolve_options(parser.parse_args(["--config", str(path)]))
    assert (opts.target, opts.benchmark, opts.num_ignore, opts.out) == (
        "http://s:8000", {"aime24": "file:///a.jsonl"}, [1, 2], "file:///out/aime24")


@pytest.mark.parametrize("module, name, ours", [
    ("thinkube.workloads.curation.pipeline", "SELECTED_JSONL", "CURATED_DATASET"),
    ("thinkube.workloads.training.checkpoint", "FINAL", "FINAL_MODEL_DIR"),
])
def test_handover_names_match_the_workloads(module, name, ours):
    from thinkube.operator import inputs

    assert getattr(pytest.importorskip(module), name) == getattr(inputs, ours)
