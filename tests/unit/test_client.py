"""The control plane's client and commands, in their parts that need no control plane.

Requests go through httpx's in-process transport where the answer matters (paging, errors),
or to a closed port on 127.0.0.1; the control plane itself is exercised in tests/cluster/test_api_client.py.
"""

from __future__ import annotations

import io
import json
import socket
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
import yaml

from thinkube.api.resources import BudgetForcedServer, SFTRun
from thinkube.cli import main
from thinkube.client import ApiError, Client, ClientError, InvalidResource, Unreachable, check, resolve_kind
from thinkube.client_cli import UsageError, load_manifests, parse_ref, table
from thinkube.constants import ENV_API_TOKEN, ENV_API_TOKEN_FILE, ENV_API_URL
from thinkube.figures import age, flatten
from thinkube.results_cli import destination
from thinkube.runs_cli import rows, training_cells
from thinkube.workloads.evaluation.report import write_reports

REPO = Path(__file__).resolve().parents[2]
SFT = yaml.safe_load((REPO / "examples" / "sftrun.yaml").read_text())
NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=timezone.utc)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- kinds and resources


@pytest.mark.parametrize("name", ["SFTRun", "sftrun", "sftruns", "sft", " SFT "])
def test_a_kind_is_found_by_its_kind_plural_singular_or_short_name(name):
    assert resolve_kind(name) is SFTRun


def test_an_unknown_kind_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown kind 'job'.*BudgetForcedServer \(budgetforcedservers, bfs\)"):
        resolve_kind("job")


def test_a_valid_manifest_passes_as_written_with_apiVersion_filled_in():
    doc = {k: v for k, v in SFT.items() if k != "apiVersion"}
    kind, body = check(doc)
    assert kind is SFTRun
    assert body["apiVersion"] == "thinkube.dev/v1alpha1" and body["spec"] == SFT["spec"]  # no defaults added


def test_a_model_is_sent_camel_case_without_unset_fields_or_status():
    server = BudgetForcedServer.model_validate(
        {"kind": "BudgetForcedServer", "metadata": {"name": "s"}, "spec": {"model": {"uri": "tiny"}}}
    )
    kind, body = check(server)
    assert kind is BudgetForcedServer and "status" not in body
    assert body["spec"]["model"] == {"uri": "tiny"} and "fromSFTRun" not in json.dumps(body)
    assert "nodeSelector" in body["spec"] and "node_selector" not in body["spec"]


@pytest.mark.parametrize(
    "change, field, message",
    [
        (lambda d: d["spec"].update(nodes=0), "spec.nodes", "greater than or equal to 1"),
        (lambda d: d["spec"].pop("baseModel"), "spec.baseModel", "required"),
        (lambda d: d["spec"].update(epochs=5), "spec.epochs", "Extra inputs are not permitted"),
        (lambda d: d["spec"]["dataset"].update(uri="pvc://x/y"), "spec.dataset", "set exactly one of"),
        (lambda d: d["spec"]["training"].update(globalBatchSize=7), "spec", "training.globalBatchSize"),
        (lambda d: d["metadata"].pop("name"), "metadata.name", "required"),
        (lambda d: d.update(metadata="s1"), "metadata.name", "required"),
        (lambda d: d.update(spec=None), "spec", "required"),
        (lambda d: d.update(apiVersion="thinkube.dev/v1"), "apiVersion", "must be thinkube.dev/v1alpha1"),
        (lambda d: d.update(kind="Widget"), "kind", "unknown kind 'Widget'"),
        (lambda d: d.pop("kind"), "kind", "required"),
    ],
)
def test_a_bad_manifest_is_refused_locally_naming_the_field(change, field, message):
    doc = json.loads(json.dumps(SFT))
    change(doc)
    with pytest.raises(InvalidResource) as e:
        check(doc)
    assert any(f == field and message in m for f, m in e.value.problems), e.value.problems


def test_generate_name_stands_in_for_a_name():
    doc = json.loads(json.dumps(SFT))
    doc["metadata"] = {"generateName": "s1-"}
    assert check(doc)[1]["metadata"] == {"generateName": "s1-"}


# ---------------------------------------------------------------- manifests


def test_manifests_are_every_non_empty_document(tmp_path):
    path = tmp_path / "runs.yaml"
    path.write_text("---\n" + yaml.safe_dump(SFT) + "---\n---\n" + yaml.safe_dump(SFT))
    assert load_manifests(str(path)) == [SFT, SFT]
    assert load_manifests("-", stdin=io.StringIO(json.dumps(SFT))) == [SFT]


@pytest.mark.parametrize(
    "text, message",
    [
        ("spec: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "document 1 is a list"),
        ("---\n", "no resources in it"),
    ],
)
def test_unusable_manifests_say_why(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_manifests(str(path))
    with pytest.raises(UsageError, match="No such file"):
        load_manifests(str(tmp_path / "missing.yaml"))


# ---------------------------------------------------------------- references and tables


def test_references_are_kind_slash_name():
    assert parse_ref("sft/s1-32b") == (SFTRun, "s1-32b")
    for bad in ("s1-32b", "sft/", "/x", "sft/a/b"):
        with pytest.raises(UsageError, match="expected KIND/NAME"):
            parse_ref(bad)
    with pytest.raises(UsageError, match="unknown kind 'pod'"):
        parse_ref("pod/x")


def test_tables_align_columns_like_kubectl():
    assert table(("KIND", "NAME"), [("SFTRun", "a"), ("EvalSweep", None)]).splitlines() == [
        "KIND        NAME",
        "SFTRun      a",
        "EvalSweep",
    ]


@pytest.mark.parametrize(
    "timestamp, expected",
    [
        ("2026-01-02T11:59:15Z", "45s"),
        ("2026-01-02T11:30:00Z", "30m"),
        ("2026-01-01T12:00:00Z", "24h"),
        (None, "<unknown>"),
    ],
)
def test_ages_are_short(timestamp, expected):
    assert age(timestamp, NOW) == expected
    assert age("2025-12-20T12:00:00Z", NOW) == "13d"


def test_training_step_and_loss_come_from_status_progress():
    run = {"kind": "SFTRun", "status": {"progress": {"step": 12, "totalSteps": 300, "loss": 0.734512}}}
    assert training_cells(run) == ("12/300", "0.7345")
    assert training_cells({"status": {"progress": "2/2 pods"}}) == ("", "")  # stored before progress was figures
    assert training_cells({}) == ("", "")
    listed = rows(
        [
            {**run, "metadata": {"name": "a", "creationTimestamp": "2026-01-02T11:59:15Z"}},
            {"kind": "EvalSweep", "metadata": {"name": "b"}, "status": {"phase": "Succeeded"}},
        ],
        with_training=True,
    )
    assert [r[0:3] + r[4:] for r in listed] == [
        ["SFTRun", "a", "Pending", "12/300", "0.7345"],
        ["EvalSweep", "b", "Succeeded", "", ""],
    ]


def test_result_summaries_flatten_to_dotted_keys_and_files_stay_inside_the_folder(tmp_path):
    summary = {"aime": {"accuracy": 0.53333, "n": 30}, "budgets": [512, 1024], "empty": {}}
    assert flatten(summary) == [
        ("aime.accuracy", "0.5333"),
        ("aime.n", "30"),
        ("budgets", "[512,1024]"),
        ("empty", "{}"),
    ]
    assert destination(tmp_path, "aime/report.md") == tmp_path.resolve() / "aime" / "report.md"
    with pytest.raises(UsageError, match="outside"):
        destination(tmp_path, "../../etc/passwd")


def test_an_eval_sweep_summary_prints_as_accuracy_tables_not_dotted_keys(tmp_path, capsys):
    from tests.unit.test_eval_report import _write
    from thinkube.results_cli import print_summary
    from thinkube.workloads.evaluation.settings import BudgetSetting

    _write(tmp_path, BudgetSetting(), [(True, 300), (True, 500)])
    _write(tmp_path, BudgetSetting(max_thinking_tokens=100), [(False, 100), (True, 100)])
    results = write_reports(tmp_path)
    print_summary("EvalSweep", results)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "bench (2 items, n = 1)"
    assert out[2].split("   ")[:3] == ["SETTING", "SAMPLES", "ACCURACY %"]
    assert [line.split()[:4] for line in out[3:5]] == [
        ["max100", "2", "50.0", "100.0"],
        ["none", "2", "100.0", "400.0"],
    ]
    assert any(line.startswith("budget forcing (max thinking tokens)   max100, none") for line in out)
    assert not any(line.startswith("benchmarks.") for line in out)
    print_summary("SFTRun", {"steps": 4, "lastLoss": 1.25})
    assert capsys.readouterr().out.splitlines()[1:] == ["KEY        VALUE", "steps      4", "lastLoss   1.25"]


# ---------------------------------------------------------------- HTTP


def problem(status: int, detail: str, field: str | None = None) -> httpx.Response:
    body = {"type": "https://thinkube.dev/problems/x", "title": "Forbidden", "status": status, "detail": detail}
    return httpx.Response(status, json={**body, "field": field}, headers={"content-type": "application/problem+json"})


def test_list_follows_continue_across_pages_and_sends_the_token():
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        page = request.url.params.get("continue")
        items = {None: [{"metadata": {"name": "a"}}], "p2": [{"metadata": {"name": "b"}}]}[page]
        return httpx.Response(200, json={"items": items, "metadata": {"continue": "p2" if page is None else ""}})

    client = Client("http://api/", "s3cret", transport=httpx.MockTransport(server))
    names = [o["metadata"]["name"] for o in client.list("sft", "team", label_selector="a=b", limit=1)]
    assert names == ["a", "b"]
    assert [r.url.path for r in seen] == ["/v1/namespaces/team/sftruns"] * 2
    assert seen[0].url.params["labelSelector"] == "a=b" and seen[0].url.params["limit"] == "1"
    assert all(r.headers["authorization"] == "Bearer s3cret" for r in seen)
    assert "s3cret" not in repr(client)


def test_error_answers_raise_api_error_from_the_problem_body():
    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/results"):
            return httpx.Response(502, text="<html>bad gateway</html>")
        return problem(403, "sftruns is forbidden", "metadata.name")

    client = Client("http://api", "t", transport=httpx.MockTransport(server))
    with pytest.raises(ApiError) as e:
        client.get("SFTRun", "x", "team")
    assert (e.value.status, e.value.title, e.value.detail, e.value.field) == (
        403,
        "Forbidden",
        "sftruns is forbidden",
        "metadata.name",
    )
    with pytest.raises(ApiError) as e:
        client.results("sft", "x")
    assert e.value.status == 502 and "bad gateway" in e.value.detail
    with pytest.raises(ApiError, match="403"):
        list(client.logs("sft", "x", follow=True))


def test_a_bad_resource_is_never_sent():
    sent: list[httpx.Request] = []
    client = Client("http://api", "t", transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(201)))
    with pytest.raises(InvalidResource, match="spec.nodes"):
        client.create({**SFT, "spec": {**SFT["spec"], "nodes": 0}})
    assert sent == []


def test_result_files_stream_to_disk_and_a_cut_download_leaves_nothing(tmp_path):
    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/missing.json"):
            return problem(404, "no result file")
        assert request.url.path == "/v1/namespaces/default/evalsweeps/e/results/aime/report.md"
        return httpx.Response(200, content=b"# report\n")

    client = Client("http://api", "t", transport=httpx.MockTransport(server))
    assert client.save_result_file("evs", "e", "aime/report.md", tmp_path / "r.md") == 9
    assert (tmp_path / "r.md").read_bytes() == b"# report\n"
    with pytest.raises(ApiError):
        client.save_result_file("evs", "e", "missing.json", tmp_path / "m.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md"]


def test_no_answer_is_unreachable_naming_the_url():
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(Unreachable, match=f"no answer from the control plane at {url}"):
        Client(url, "t", timeout=5).get("sft", "x")


def test_from_env_reads_the_token_or_its_file(tmp_path):
    (tmp_path / "token").write_text("from-file\n")
    env = {ENV_API_URL: "http://api", ENV_API_TOKEN_FILE: str(tmp_path / "token")}
    client = Client.from_env(env)
    assert client._http.headers["authorization"] == "Bearer from-file"
    assert Client.from_env({**env, ENV_API_TOKEN: "direct"})._http.headers["authorization"] == "Bearer direct"
    with pytest.raises(ClientError, match=ENV_API_TOKEN):
        Client.from_env({ENV_API_URL: "http://api"})
    with pytest.raises(ClientError, match="cannot read the token file"):
        Client.from_env({ENV_API_URL: "http://api", ENV_API_TOKEN_FILE: str(tmp_path / "none")})


# ---------------------------------------------------------------- commands


def test_submit_names_the_bad_field_and_exits_2_before_connecting(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(ENV_API_URL, raising=False)
    path = tmp_path / "run.yaml"
    good, bad = json.loads(json.dumps(SFT)), json.loads(json.dumps(SFT))
    bad["spec"]["nodes"] = 0
    path.write_text(yaml.safe_dump(good) + "---\n" + yaml.safe_dump(bad))
    assert main(["submit", "-f", str(path)]) == 2
    err = capsys.readouterr().err
    assert "document 2 (SFTRun/s1-32b) is not valid" in err and "spec.nodes: Input should be greater" in err
    assert main(["submit", "-f", str(path), "-n", "other"]) == 2  # still nothing sent


def test_commands_say_what_is_missing_and_whose_fault_a_failure_is(tmp_path, capsys, monkeypatch):
    for name in (ENV_API_URL, ENV_API_TOKEN, ENV_API_TOKEN_FILE):
        monkeypatch.delenv(name, raising=False)
    assert main(["runs"]) == 2
    assert "no control-plane URL: give --api-url or set THINKUBE_API_URL" in capsys.readouterr().err
    assert main(["runs", "--api-url", "http://127.0.0.1:1"]) == 2
    assert "no token" in capsys.readouterr().err
    assert main(["logs", "s1-32b"]) == 2
    assert "expected KIND/NAME" in capsys.readouterr().err
    monkeypatch.setenv(ENV_API_TOKEN, "t")
    assert main(["runs", "--kind", "pods", "--api-url", "http://x"]) == 2
    assert main(["results", "sft/x", "--api-url", f"http://127.0.0.1:{closed_port()}"]) == 1
    assert "no answer from the control plane" in capsys.readouterr().err
