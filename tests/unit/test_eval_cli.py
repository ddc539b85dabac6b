"""`thinkube eval` options: command line over config file over defaults, and the config
files the operator writes for EvalSweep pods (its builder is the other side of this contract)."""
from __future__ import annotations

import argparse
import json

import pytest

from thinkube.api.resources import EvalSweep
from thinkube.operator.builders import Resolved
from thinkube.operator.builders.evaluation import stage_configs
from thinkube.workloads.evaluation.cli import add_arguments, resolve_options


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return resolve_options(p.parse_args(argv))


def test_operator_configs_are_accepted(tmp_path, monkeypatch):
    sweep = EvalSweep.model_validate({
        "apiVersion": "thinkube.dev/v1alpha1", "kind": "EvalSweep", "metadata": {"name": "s", "namespace": "ns"},
        "spec": {"target": {"serverRef": "srv", "model": "m"}, "maxThinkingTokens": [512, 1024], "numIgnore": [1],
                 "samples": 4, "temperature": 0.6, "chatFormat": "think-tags",
                 "benchmarks": [{"name": "gpqa", "uri": "pvc://bench/gpqa.csv", "limit": 5}]}})
    [(name, cfg)] = stage_configs(sweep, Resolved("http://srv.ns.svc:8000", "pvc://out/s")).items()
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    monkeypatch.setenv("THINKUBE_CONFIG", str(path))  # how pods pass it
    o = parse()
    assert (o.target, o.model, o.out) == ("http://srv.ns.svc:8000", "m", "pvc://out/s/gpqa")
    assert o.benchmark == {"gpqa": "pvc://bench/gpqa.csv"} and o.limit == 5
    assert (o.max_thinking_tokens, o.num_ignore, o.n, o.temperature) == ([512, 1024], [1], 4, 0.6)
    assert o.chat_format == "think-tags" and o.no_progress is True


def test_command_line_wins_and_lists_parse(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("target: http://a:1\nout: /o\nbenchmarks: [aime24=/a.jsonl]\nmax-thinking-tokens: 64,128\nn: 4\n")
    o = parse("--config", str(path), "--n", "2", "--benchmark", "math500=/m.jsonl", "--num-ignore", "0,2")
    assert o.n == 2 and o.max_thinking_tokens == [64, 128] and o.num_ignore == [0, 2]
    assert o.benchmark == {"aime24": "/a.jsonl", "math500": "/m.jsonl"}
    assert (o.temperature, o.concurrency, o.combine) == (0.0, 8, False)  # defaults


@pytest.mark.parametrize("argv,message", [
    (["--target", "http://a", "--benchmark", "x=y"], "--out is required"),
    (["--out", "/o", "--target", "http://a"], "at least one --benchmark"),
    (["--out", "/o", "--target", "http://a", "--benchmark", "x=y", "--judge-url", "http://j"], "needs --judge-model"),
])
def test_missing_options_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        parse(*argv)


def test_bad_integer_list_is_explained(capsys):
    with pytest.raises(SystemExit):
        parse("--max-thinking-tokens", "64,lots")
    assert "expected comma-separated integers such as 64,128,256, got '64,lots'" in capsys.readouterr().err
