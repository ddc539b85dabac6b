"""Prometheus metrics of the budget-forcing server, on a registry of its own so several
servers (tests) in one process never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ServerMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "thinkube_requests", "Requests by endpoint and HTTP status", ["endpoint", "status"], registry=r
        )
        self.thinking_tokens = Counter("thinkube_thinking_tokens", "Thinking tokens produced", registry=r)
        self.answer_tokens = Counter("thinkube_answer_tokens", "Answer tokens produced", registry=r)
        self.prompt_tokens = Counter("thinkube_prompt_tokens", "Prompt tokens received", registry=r)
        self.extensions = Counter("thinkube_extensions", "Ignore-string extensions applied", registry=r)
        self.forced_ends = Counter("thinkube_forced_ends", "Thinking ended by the budget", registry=r)
        self.out_of_vocab = Counter(
            "thinkube_out_of_vocab_tokens_dropped",
            "Generated ids beyond the tokenizer, dropped before re-feeding",
            registry=r,
        )
        self.in_flight = Gauge("thinkube_requests_in_flight", "Requests being generated", registry=r)
        self.latency = Histogram(
            "thinkube_request_latency_seconds",
            "End-to-end request latency",
            ["endpoint"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        )

    def observe(self, outcome) -> None:
        self.thinking_tokens.inc(outcome.thinking_tokens)
        self.answer_tokens.inc(outcome.answer_tokens)
        self.extensions.inc(outcome.extensions)
        self.forced_ends.inc(int(outcome.forced_end))
        self.out_of_vocab.inc(outcome.dropped_out_of_vocab)

    def render(self) -> bytes:
        return generate_latest(self.registry)
