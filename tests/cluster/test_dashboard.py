"""The web dashboard in a real browser (the system's Chromium, driven by Playwright) against the
real control plane acting as the chart's ServiceAccount: signing in, the runs of a namespace,
a run's page (conditions, events, the chain, results with their plots, the log tail) and what
a user without rights sees. There is no kubelet: status and outputs are written the way the
operator and the workloads would. Screenshots of every page go to test-artifacts/dashboard/.
"""

from __future__ import annotations

import json
import re
import urllib.parse

import httpx
import pytest

from tests.cluster.test_api_client import set_status
from tests.support.browser import log_text, shot, sign_in
from tests.support.control_plane import CLAIM, post_event
from tests.unit.test_eval_report import _write as write_records
from thinkube.api.server.deps import TOKEN_COOKIE
from thinkube.client import Client
from thinkube.workloads.evaluation.report import PLOT_PNG, write_reports
from thinkube.workloads.evaluation.settings import BudgetSetting
from thinkube.workloads.training.progress import METRICS_FILE

CURATE, TRAIN, SERVE, SWEEP = "dash-curate", "dash-train", "dash-serve", "dash-sweep"
NAMES = (CURATE, TRAIN, SERVE, SWEEP)
EVENT_MESSAGE = "sweep finished: 3 settings, 6 samples"
WHEN = "2026-01-02T03:04:05Z"


def _complete(status: str, reason: str, message: str, kind: str = "Complete") -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": WHEN}


def _eval_records(folder) -> None:
    """Sample records as a sweep writes them; the project's report code makes results.json and the plot."""
    write_records(folder, BudgetSetting(), [(True, 300), (True, 500)])
    write_records(folder, BudgetSetting(max_thinking_tokens=100), [(False, 100), (False, 100)])
    write_records(folder, BudgetSetting(max_thinking_tokens=200), [(True, 150), (False, 200)])
    write_reports(folder)
    assert (folder / PLOT_PNG).stat().st_size > 1000


@pytest.fixture(scope="module")
def runs(cluster, api):
    """A CurationJob -> SFTRun -> BudgetForcedServer -> EvalSweep chain made through the API."""
    ns = api.namespace
    sft_out, sweep_out = f"sftruns/{ns}/{TRAIN}", f"evalsweeps/{ns}/{SWEEP}"
    docs = [
        {
            "kind": "CurationJob",
            "metadata": {"name": CURATE},
            "spec": {"pools": {"p": "pvc://art/pool.jsonl"}, "domainColumn": "domain", "baseModels": [SERVE]},
        },
        {
            "kind": "SFTRun",
            "metadata": {"name": TRAIN},
            "spec": {"baseModel": "tiny", "dataset": {"fromCurationJob": CURATE}, "nodes": 1, "gpusPerNode": 0},
        },
        {"kind": "BudgetForcedServer", "metadata": {"name": SERVE}, "spec": {"model": {"fromSFTRun": TRAIN}}},
        {
            "kind": "EvalSweep",
            "metadata": {"name": SWEEP},
            "spec": {"target": {"serverRef": SERVE}, "benchmarks": [{"name": "bench", "uri": "pvc://art/b.jsonl"}]},
        },
    ]
    with Client(api.url, api.token, timeout=30) as c:
        created = {d["metadata"]["name"]: c.create({"apiVersion": "thinkube.dev/v1alpha1", **d}, ns) for d in docs}
    set_status(
        cluster,
        api,
        "curationjobs",
        CURATE,
        {"phase": "Succeeded", "conditions": [_complete("True", "Succeeded", "1000 rows selected")]},
    )
    folder = api.pvc_root / CLAIM / sft_out
    folder.mkdir(parents=True)
    losses = [2.0, 1.6, 1.3, 1.1]
    (folder / METRICS_FILE).write_text(
        "".join(
            json.dumps({"step": i + 1, "total_steps": 10, "loss": loss, "tokens_per_s": 900.0, "epoch": (i + 1) / 2})
            + "\n"
            for i, loss in enumerate(losses)
        )
    )
    progress = {"step": 4, "totalSteps": 10, "loss": 1.1, "epoch": 2.0, "updatedAt": WHEN}
    set_status(
        cluster,
        api,
        "sftruns",
        TRAIN,
        {
            "phase": "Running",
            "progress": progress,
            "outputUri": f"pvc://{CLAIM}/{sft_out}",
            "conditions": [_complete("False", "Running", "1 of 1 pods running")],
        },
    )
    set_status(
        cluster,
        api,
        "budgetforcedservers",
        SERVE,
        {"phase": "Ready", "conditions": [_complete("True", "Ready", "1 replica ready", "Ready")]},
    )
    folder = api.pvc_root / CLAIM / sweep_out
    _eval_records(folder)
    set_status(
        cluster,
        api,
        "evalsweeps",
        SWEEP,
        {
            "phase": "Succeeded",
            "outputUri": f"pvc://{CLAIM}/{sweep_out}",
            "conditions": [_complete("True", "Succeeded", "every setting graded")],
        },
    )
    kubectl = lambda *a, input=None: cluster.kubectl(*a, input=input).stdout  # noqa: E731
    post_event(kubectl, created[SWEEP], "Completed", EVENT_MESSAGE, WHEN)
    return created


def run_url(api, plural: str, name: str) -> str:
    return f"{api.url}/ui/namespaces/{api.namespace}/{plural}/{name}"


def image_loaded(page, name: str) -> int:
    """The natural width of the result image `name` once the browser has loaded it (0: broken)."""
    selector = f'img[data-name="{name}"]'
    page.wait_for_function(f"document.querySelector('{selector}') && document.querySelector('{selector}').complete")
    return page.eval_on_selector(selector, "img => img.naturalWidth")


def test_sign_in_then_the_runs_of_the_namespace(api, runs, new_page):
    page = new_page()
    page.goto(f"{api.url}/")
    assert page.url == f"{api.url}/signin"  # no cookie: the sign-in form

    refused = sign_in(page, api.url, api.namespace, "not-a-token")
    assert refused.status == 401
    assert "did not accept this token" in page.inner_text("#signin-error")
    assert "kubectl create token" in page.content()
    shot(page, "signin-refused")

    accepted = sign_in(page, api.url, api.namespace, api.token)
    assert accepted.status == 303
    assert page.url == f"{api.url}/?{urllib.parse.urlencode({'namespace': api.namespace})}"
    cookie = next(c for c in page.context.cookies() if c["name"] == TOKEN_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    train = page.locator(f'#sftruns tr[data-name="{TRAIN}"]')
    assert train.locator(".phase").inner_text() == "Running"
    assert train.locator(".step").inner_text() == "4/10" and train.locator(".loss").inner_text() == "1.1"
    assert "False (Running)" in train.inner_text()
    sweep = page.locator(f'#evalsweeps tr[data-name="{SWEEP}"]')
    assert sweep.locator(".phase").inner_text() == "Succeeded" and "True (Succeeded)" in sweep.inner_text()
    assert page.locator(f'#budgetforcedservers tr[data-name="{SERVE}"] .phase').inner_text() == "Ready"
    assert "Ready" in page.inner_text("#budgetforcedservers th:nth-child(3)")  # a server's primary condition
    shot(page, "index")

    sweep.locator("a").click()
    page.wait_for_url(run_url(api, "evalsweeps", SWEEP))
    assert page.inner_text("h1").startswith(f"EvalSweep {SWEEP}")


def test_an_eval_sweep_page_shows_conditions_events_chain_results_and_logs(api, runs, new_page):
    page = new_page()
    sign_in(page, api.url, api.namespace, api.token)
    page.goto(run_url(api, "evalsweeps", SWEEP))
    assert page.inner_text("#phase") == "Succeeded"
    conditions = page.inner_text("#conditions")
    assert "Complete" in conditions and "every setting graded" in conditions and WHEN in conditions
    assert EVENT_MESSAGE in page.inner_text("#events")

    # Upstream through the spec's references, each stage a link to its own page.
    chain = {a.get_attribute("data-kind"): a.get_attribute("href") for a in page.locator("#chain a").all()}
    assert chain == {
        "CurationJob": f"/ui/namespaces/{api.namespace}/curationjobs/{CURATE}",
        "SFTRun": f"/ui/namespaces/{api.namespace}/sftruns/{TRAIN}",
        "BudgetForcedServer": f"/ui/namespaces/{api.namespace}/budgetforcedservers/{SERVE}",
        "EvalSweep": f"/ui/namespaces/{api.namespace}/evalsweeps/{SWEEP}",
    }

    # One table per benchmark, settings in budget order: accuracy and mean thinking from the records above.
    table = page.locator('#results table.evaluation[data-benchmark="bench"] tbody tr')
    rows = {r.get_attribute("data-setting"): r.locator("td").all_inner_texts() for r in table.all()}
    assert list(rows) == ["max100", "max200", "none"]
    assert [rows[k][2:5] for k in rows] == [
        ["0.0", "100.0", "100.0"],
        ["50.0", "175.0", "100.0"],
        ["100.0", "400.0", "100.0"],
    ]
    curves = (
        page.locator('#results table.curves[data-benchmark="bench"] tbody tr').first.locator("td").all_inner_texts()
    )
    assert curves[0] == "budget forcing (max thinking tokens)" and curves[-1] == "100.0", curves
    assert page.locator("#results table.summary").count() == 0  # no flattened keys beside the tables
    assert image_loaded(page, PLOT_PNG) > 0  # fetched with the sign-in cookie
    assert "results.md" in page.inner_text("#results .files")

    assert log_text(page) == f"Not Found: EvalSweep {SWEEP} has no pods yet"
    shot(page, "evalsweep")


def test_an_sft_run_page_shows_its_loss_curve_progress_and_input(api, runs, new_page):
    page = new_page()
    sign_in(page, api.url, api.namespace, api.token)
    page.goto(run_url(api, "sftruns", TRAIN))
    assert page.inner_text("#phase") == "Running"
    assert page.inner_text("#progress .step") == "4/10" and page.inner_text("#progress .loss") == "1.1"
    assert image_loaded(page, "loss_curve.png") > 0
    summary = dict(row.locator("td").all_inner_texts() for row in page.locator("#results table.summary tbody tr").all())
    assert summary["steps"] == "4" and summary["lastLoss"] == "1.1" and summary["firstLoss"] == "2"
    assert "has no pods yet" in log_text(page)
    shot(page, "sftrun")

    # The chain: from the run to the CurationJob it reads, whose page shows the run downstream.
    page.click('#chain a[data-kind="CurationJob"]')
    page.wait_for_url(run_url(api, "curationjobs", CURATE))
    assert page.inner_text("#phase") == "Succeeded"
    downstream = [a.inner_text() for a in page.locator("#chain .stage a").all()]
    assert downstream == [CURATE, TRAIN, SERVE, SWEEP]
    assert "BudgetForcedServer dash-serve (spec.baseModels[0], Ready)" in page.inner_text("#chain .also")
    shot(page, "curationjob")


def test_the_log_panel_appends_what_the_logs_endpoint_streams(api, runs, new_page):
    # No kubelet in this tier, so no pod has logs: the browser is handed the answer a pod's would be.
    page = new_page()
    sign_in(page, api.url, api.namespace, api.token)
    lines = "".join(f"[{TRAIN}-r0] step {i} loss {2 - i / 10}\n" for i in range(1, 6))
    seen = []

    def answer(route):
        seen.append(route.request.url)
        route.fulfill(status=200, body=lines, content_type="text/plain; charset=utf-8")

    page.route("**/logs?*", answer)
    page.goto(run_url(api, "sftruns", TRAIN))
    assert log_text(page).startswith(lines.strip()) and "error" not in page.get_attribute("#log", "class")
    assert seen == [f"{api.url}/v1/namespaces/{api.namespace}/sftruns/{TRAIN}/logs?follow=true&tail=200"]


def test_an_outsider_sees_what_they_may_not_list_and_no_runs(api, runs, new_page):
    page = new_page()
    assert sign_in(page, api.url, api.namespace, api.outsider_token).status == 303  # a valid token: signing in works
    sections = page.locator("main section")
    assert sections.count() == 4
    for plural in ("curationjobs", "sftruns", "budgetforcedservers", "evalsweeps"):
        assert page.inner_text(f"#{plural}").endswith(f"not allowed to list {plural} in namespace {api.namespace}")
    assert not any(name in page.content() for name in NAMES)
    shot(page, "outsider")

    page.goto(run_url(api, "sftruns", TRAIN))
    assert "not allowed to get sftruns" in page.inner_text("#problem")
    assert "Running" not in page.inner_text("main")


def test_pages_set_security_headers_and_the_cookie_changes_nothing(api, runs):
    with httpx.Client(base_url=api.url, timeout=30) as http:
        assert http.get("/").headers["location"] == "/signin"
        foreign = http.post("/signin", data={"token": api.token}, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403 and "set-cookie" not in foreign.headers

        signed = http.post("/signin", data={"token": api.token, "namespace": api.namespace})
        assert signed.status_code == 303
        set_cookie = next(h for h in signed.headers.get_list("set-cookie") if h.startswith(TOKEN_COOKIE))
        assert {"HttpOnly", "SameSite=strict", "Path=/"} <= {p.strip() for p in set_cookie.split(";")}
        assert re.search(r"Max-Age=\d{4,5}", set_cookie)
        http.cookies.clear()
        cookie = {"Cookie": f"{TOKEN_COOKIE}={api.token}"}

        for path in ("/signin", f"/?namespace={api.namespace}", f"/ui/namespaces/{api.namespace}/sftruns/{TRAIN}"):
            page = http.get(path, headers=cookie)
            assert page.status_code == 200, path
            csp = page.headers["content-security-policy"]
            nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
            assert nonce and "default-src 'self'" in csp and "img-src 'self' data:" in csp, csp
            assert page.headers["x-frame-options"] == "DENY"
            assert all(f'nonce="{nonce.group(1)}"' in tag for tag in re.findall(r"<script[^>]*>", page.text))

        run = f"/v1/namespaces/{api.namespace}/sftruns/{TRAIN}"
        assert http.get(run, headers=cookie).status_code == 200  # reads: the cookie is enough
        body = {"metadata": {"name": "dash-never"}, "spec": {"baseModel": "tiny", "dataset": {"uri": "pvc://art/d"}}}
        changes = [
            http.post(f"/v1/namespaces/{api.namespace}/sftruns", json=body, headers=cookie),
            http.patch(run, json={"spec": {"suspend": True}}, headers=cookie),
            http.delete(run, headers=cookie),
        ]
        assert [r.status_code for r in changes] == [401, 401, 401]
        with Client(api.url, api.token, timeout=30) as c:
            assert c.get("sft", TRAIN, api.namespace)["spec"]["suspend"] is False

        out = http.post("/signout", headers=cookie)
        assert out.headers["location"] == "/signin" and f'{TOKEN_COOKIE}=""' in out.headers["set-cookie"]
