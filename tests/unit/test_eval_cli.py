"""`thinkube eval` options: command line over config files over defaults, and the config
files the operator writes for EvalSweep pods (its builder is the other side of this contract)."""

from __future__ import annotations

import argparse

import pytest

from thinkube.api.resources import EvalSweep
from thinkube.api.stages.evaluate import EvalConfig
from thinkube.api.stages.loader import BadConfig
from thinkube.operator.kinds import Resolved
from thinkube.operator.kinds.common import config_file
from thinkube.operator.kinds.evaluation import stage_configs
from thinkube.workloads.evaluation.cli import add_arguments, resolve_options


def parse(*argv: str) -> EvalConfig:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return resolve_options(p.parse_args(argv))


def test_operator_configs_are_accepted(tmp_path, monkeypatch):
    sweep = EvalSweep.model_validate(
        {
            "apiVersion": "thinkube.dev/v1alpha1",
            "kind": "EvalSweep",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {
                "target": {"serverRef": "srv", "model": "m"},
                "maxThinkingTokens": [512, 1024],
                "numIgnore": [1],
                "samples": 4,
                "temperature": 0.6,
                "chatFormat": "think-tags",
                "benchmarks": [{"name": "gpqa", "uri": "pvc://bench/gpqa.csv", "limit": 5}],
            },
        }
    )
    [(name, cfg)] = stage_configs(sweep, Resolved("http://srv.ns.svc:8000", "pvc://out/s")).items()
    path = tmp_path / name
    path.write_text(config_file(cfg))
    monkeypatch.setenv("THINKUBE_CONFIG", str(path))  # how pods pass it
    o = parse()
    assert (o.target, o.model, o.out) == ("http://srv.ns.svc:8000", "m", "pvc://out/s/gpqa")
    assert o.benchmarks == {"gpqa": "pvc://bench/gpqa.csv"} and o.limit == 5
    assert (o.max_thinking_tokens, o.num_ignore, o.samples, o.temperature) == ([512, 1024], [1], 4, 0.6)
    assert o.chat_format == "think-tags" and o.progress is False


def test_command_line_wins_and_lists_parse(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "target: http://a:1\nout: /o\nbenchmarks: {aime24: /a.jsonl}\nmax-thinking-tokens: 64,128\nsamples: 4\n"
    )
    o = parse("--config", str(path), "--samples", "2", "--benchmark", "math500=/m.jsonl", "--num-ignore", "0,2")
    assert o.samples == 2 and o.max_thinking_tokens == [64, 128] and o.num_ignore == [0, 2]
    assert o.benchmarks == {"aime24": "/a.jsonl", "math500": "/m.jsonl"}
    assert (o.temperature, o.concurrency, o.combine) == (0.0, 8, False)  # defaults
    path.write_text("target: http://a:1\nout: /o\nbenchmarks: [aime24=/a.jsonl]\n")  # the flag's form in a file
    assert parse("--config", str(path)).benchmarks == {"aime24": "/a.jsonl"}


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--target", "http://a", "--benchmark", "x=y"], "out: required: give --out"),
        (["--out", "/o", "--target", "http://a"], "at least one benchmark: --benchmark NAME=PATH"),
        (["--out", "/o", "--target", "http://a", "--benchmark", "x=y", "--judge-url", "http://j"], "needs judge_model"),
        (["--out", "/o", "--target", "a:1", "--benchmark", "x=y"], "target: String should match pattern"),
    ],
)
def test_missing_options_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        parse(*argv)


def test_bad_integer_list_is_explained():
    with pytest.raises(
        BadConfig, match="max_thinking_tokens: .*expected comma-separated integers such as 64,128,256, got '64,lots'"
    ):
        parse("--out", "/o", "--target", "http://a", "--benchmark", "x=y", "--max-thinking-tokens", "64,lots")
