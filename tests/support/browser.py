"""The dashboard's pages in a real browser: Debian's chromium driven by Playwright (nothing downloads
a browser). Screenshots land in test-artifacts/dashboard/ for people to look at."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from tests.support.paths import REPO
from thinkube.constants import ENV_REQUIRE_NODE

SHOTS = REPO / "test-artifacts" / "dashboard"


@pytest.fixture(scope="module")
def browser():
    exe = shutil.which("chromium")
    if exe is None:
        reason = "chromium is not installed (apt-get install chromium); the dashboard tests drive it"
        if os.environ.get(ENV_REQUIRE_NODE) == "1":  # CI installs it: missing there is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser) -> Iterator[Callable]:
    """A fresh browser context (no cookies) per page asked for."""
    contexts = []

    def make():
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(20_000)
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def sign_in(page, url: str, namespace: str, token: str):
    """Fills in the sign-in form of the dashboard at `url`; returns the answer to the form's POST."""
    page.goto(f"{url}/signin")
    page.fill("#token", token)
    page.fill("#namespace", namespace)
    with page.expect_response(lambda r: r.url.endswith("/signin") and r.request.method == "POST") as answer:
        page.click("form.signin button[type=submit]")
    page.wait_for_load_state()
    return answer.value


def log_text(page, timeout_s: float = 20) -> str:
    """The run page's log panel once its stream has ended or failed (a failure sets data-status)."""
    panel = "document.getElementById('log')"
    page.wait_for_function(
        f"{panel}.dataset.status || {panel}.textContent.includes('[end of logs]')", timeout=timeout_s * 1000
    )
    return page.inner_text("#log")
