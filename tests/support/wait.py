"""Polling for what a controller does asynchronously, failing the test with what it waited for."""

from __future__ import annotations

import time

import pytest

TIMEOUT = 60.0


def wait_for(fn, what: str, timeout: float = TIMEOUT, interval: float = 0.25):
    """The first truthy value of fn() within `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
