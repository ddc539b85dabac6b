"""The stage configs the builders write are what the commands read, through their own loaders."""

from __future__ import annotations

import argparse

import pytest

from thinkube.api.resources import BudgetForcedServer, CurationJob, EvalSweep, SFTRun
from thinkube.api.stages.curate import CurateSettings
from thinkube.api.stages.evaluate import EvalSettings
from thinkube.api.stages.serve import ServeSettings
from thinkube.api.stages.train import TrainConfig, TrainRecipe
from thinkube.operator.kinds import Defaults, Resolved, curation, evaluation, server, sft

D = Defaults(image="img:1")


def body(kind: str, spec: dict) -> dict:
    return {
        "apiVersion": "thinkube.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", "uid": "u"},
        "spec": spec,
    }


def parsed(module: str, *argv: str) -> argparse.Namespace:
    cli = pytest.importorskip(module)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def written(manifests: list[dict], name: str, tmp_path) -> str:
    cm = next(m for m in manifests if m["kind"] == "ConfigMap")
    path = tmp_path / name
    path.write_text(cm["data"][name])
    return str(path)


@pytest.mark.parametrize(
    "resource, settings",
    [
        (CurationJob, CurateSettings),
        (SFTRun, TrainRecipe),
        (BudgetForcedServer, ServeSettings),
        (EvalSweep, EvalSettings),
    ],
)
def test_each_spec_embeds_its_stage_settings(resource, settings):
    spec = resource.model_fields["spec"].annotation
    embedded = spec.model_fields["training"].annotation if resource is SFTRun else spec
    assert issubclass(embedded, settings)


def test_the_s1_recipe_is_defined_once():
    run = SFTRun.model_validate(body("SFTRun", {"baseModel": "tiny", "dataset": {"uri": "file:///d.jsonl"}}))
    assert run.spec.training == TrainRecipe()
    assert TrainConfig(dataset="d").model_dump(include=set(TrainRecipe.model_fields)) == TrainRecipe().model_dump()


def test_train_config_loads(tmp_path, monkeypatch):
    from thinkube.api.stages.loader import load

    spec = {"baseModel": "tiny", "dataset": {"uri": "file:///d.jsonl"}, "training": {"epochs": 3, "packing": True}}
    manifests = sft.build(body("SFTRun", spec), Resolved("file:///d.jsonl", "pvc://out/x"), D)
    cfg = load(TrainConfig, {}, written(manifests, "config.json", tmp_path), environ={})
    assert (cfg.model, cfg.dataset, cfg.output) == ("tiny", "file:///d.jsonl", "pvc://out/x")
    assert (cfg.epochs, cfg.packing, cfg.block_size, cfg.precision) == (3, True, 32768, "auto")


def test_curate_config_loads(tmp_path):
    cli = pytest.importorskip("thinkube.workloads.curation.cli")
    manifests = curation.build(
        body("CurationJob", {"pools": {"p": "pvc://d/p.jsonl"}, "domainColumn": "domain"}),
        Resolved(output_uri="pvc://out/x"),
        D,
    )
    args = parsed(
        "thinkube.workloads.curation.cli", "--config", written(manifests, "config.json", tmp_path), "--target-size", "7"
    )
    cfg = cli.resolve_config(args)
    assert (cfg.out, cfg.target_size, cfg.domain_column, cfg.pools) == (
        "pvc://out/x",
        7,
        "domain",
        {"p": "pvc://d/p.jsonl"},
    )


def test_eval_config_loads(tmp_path):
    cli = pytest.importorskip("thinkube.workloads.evaluation.cli")
    spec = {
        "target": {"url": "http://s:8000"},
        "benchmarks": [{"name": "aime24", "uri": "file:///a.jsonl"}],
        "numIgnore": [1, 2],
        "samples": 3,
    }
    manifests = evaluation.build(body("EvalSweep", spec), Resolved("http://s:8000", "file:///out"), D)
    opts = cli.resolve_options(
        parsed("thinkube.workloads.evaluation.cli", "--config", written(manifests, "benchmark-0.json", tmp_path))
    )
    assert (opts.target, opts.benchmarks, opts.num_ignore, opts.out, opts.samples, opts.progress) == (
        "http://s:8000",
        {"aime24": "file:///a.jsonl"},
        [1, 2],
        "file:///out/aime24",
        3,
        False,
    )


def test_serve_config_loads(tmp_path):
    cli = pytest.importorskip("thinkube.workloads.serving.cli")
    spec = {"model": {"uri": "pvc://models/m"}, "gpus": 4, "servedModelName": "m", "budget": {"numIgnore": 2}}
    manifests = server.build(body("BudgetForcedServer", spec), Resolved("pvc://models/m"), D)
    cfg = cli.resolve_config(
        parsed(
            "thinkube.workloads.serving.cli", "--config", written(manifests, "config.json", tmp_path), "--port", "9000"
        )
    )
    assert (cfg.model, cfg.host, cfg.port, cfg.served_model_name) == ("pvc://models/m", "0.0.0.0", 9000, "m")
    assert (cfg.tensor_parallel_size, cfg.budget.num_ignore, cfg.budget.ignore_string) == (4, 2, "Wait")
