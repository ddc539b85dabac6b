"""Run a pure-Python computation under a wall-clock limit, in any thread or process.

math-verify's own timeouts use SIGALRM, which Python only allows in the main thread, so
they break inside thread pools and async executors. Symbolic equivalence can hang on
adversarial answers (huge powers, nested radicals), so the limit must stay. Here:
- main thread: `setitimer(ITIMER_REAL)` raises in the computation (sub-second precision);
- other threads: a watchdog timer injects the exception into the worker thread with
  `PyThreadState_SetAsyncExc`, which Python delivers between bytecodes. Sympy is pure
  Python, so both interrupt it promptly.
The exception derives from BaseException so that the broad `except Exception` handlers in
math-verify and sympy cannot swallow it.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimeLimitExceeded(BaseException):
    """The computation ran past its limit (BaseException: must not be caught by `except Exception`)."""


def run_with_time_limit(fn: Callable[[], T], seconds: float | None) -> T:
    """fn() or TimeLimitExceeded after `seconds` (None or <= 0: no limit)."""
    if not seconds or seconds <= 0:
        return fn()
    if threading.current_thread() is threading.main_thread():
        return _main_thread(fn, seconds)
    return _worker_thread(fn, seconds)


def _main_thread(fn: Callable[[], T], seconds: float) -> T:
    def on_alarm(signum, frame):
        raise TimeLimitExceeded(f"exceeded {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:  # separate, so a late alarm raised while disarming still restores the handler
        signal.signal(signal.SIGALRM, previous)


def _worker_thread(fn: Callable[[], T], seconds: float) -> T:
    target = threading.get_ident()
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def fire():
        with lock:  # never inject after the worker has left fn()
            if not state["done"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(TimeLimitExceeded))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        return fn()
    finally:
        timer.cancel()
        with lock:
            state["done"] = True
            if state["fired"]:
                # Injected but maybe not yet delivered (fn returned first): clear it so it
                # cannot surface later in unrelated code; the caller then sees fn's result.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)
