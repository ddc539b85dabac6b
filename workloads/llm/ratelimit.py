"""Client-side rate limits for hosted model APIs: requests and tokens per minute.

Requests are spaced evenly (no burst at start). Tokens work on credit: a call takes its
prompt estimate before it is sent and is charged what the reply says it used after, so a
call that spent more than expected delays the next ones instead of being refused. A 429's
Retry-After pauses every caller, not just the one that got it: the server's limit is shared.
"""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None):
        if (requests_per_minute is not None and requests_per_minute <= 0) or (
            tokens_per_minute is not None and tokens_per_minute <= 0
        ):
            raise ValueError("requests_per_minute and tokens_per_minute must be positive (or unset)")
        self.rpm, self.tpm = requests_per_minute, tokens_per_minute
        now = time.monotonic()
        self._next_request = now
        self._tokens = (tokens_per_minute or 0) / 60  # one second of credit to start
        self._tokens_at = now
        self._paused_until = now
        self._lock = asyncio.Lock()
        self.pauses = 0

    def _refill(self, now: float) -> None:
        if self.tpm is not None:
            self._tokens = min(self.tpm / 60, self._tokens + (now - self._tokens_at) * self.tpm / 60)
            self._tokens_at = now

    def _wait_s(self, now: float) -> float:
        wait = self._paused_until - now
        if self.rpm is not None:
            wait = max(wait, self._next_request - now)
        if self.tpm is not None and self._tokens < 0:
            wait = max(wait, -self._tokens / (self.tpm / 60))
        return wait

    async def acquire(self, tokens: int = 0) -> None:
        """Waits until one more request of about `tokens` prompt tokens may be sent."""
        async with self._lock:  # one waiter at a time keeps the spacing exact
            while True:
                now = time.monotonic()
                self._refill(now)
                wait = self._wait_s(now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.rpm is not None:
                self._next_request = max(now, self._next_request) + 60 / self.rpm
            if self.tpm is not None:
                self._tokens -= tokens

    def charge(self, tokens: int) -> None:
        """Tokens a finished call used beyond what `acquire` took for it (negative: a refund
        when the estimate was high)."""
        if self.tpm is not None:
            self._refill(time.monotonic())
            self._tokens = min(self.tpm / 60, self._tokens - tokens)

    def pause(self, seconds: float) -> None:
        """The server said to wait (429 with Retry-After): nobody sends before then."""
        self.pauses += 1
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
