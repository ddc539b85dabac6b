"""In-engine budget forcing for vLLM: a custom logits processor over vLLM's public
extension interface (vllm.v1.sample.logits_processor.LogitsProcessor, registered with
`AsyncEngineArgs(logits_processors=[...])`, per-request arguments in
`SamplingParams.extra_args`). A budget-forced request stays one engine request: an
extension or a forced end costs one decode step per forced token and never a prefill.

The processor runs in the engine process; how many extensions it applied goes back to
the server through a Tally, a small shared memory file with one counter per request
(the token stream alone cannot tell a forced "Wait" from one the model wrote).
Not compatible with speculative decoding (vLLM refuses custom logits processors there):
serve with `--budget-forcing resubmit` in that case.

No host-device synchronisation per decode step. The host never reads this step's
logits: what it needs is host data vLLM already keeps (each request's output token list,
holding the tokens sampled up to the previous step, and the sampling parameters), and
the logits are edited on the device only:
- what the host knows (rows that must take a forced token and their tokens, rows that
  decide whether the model tries to end its thinking and the token each would force,
  their stop tokens, the sampler's temperatures and top-p, the sampled rows' uniform
  draws) goes to the device in one non-blocking copy from pinned memory per step;
- whether a deciding row tries to end (its argmax is a stop token, or its draw falls
  under the sampler's odds of a stop token) is computed on the device, and the edits
  take that answer as their mask (masked_fill_ of the rows, index_put_ of the tokens);
- the answers come back in one non-blocking copy into pinned memory, read a step later,
  once the row's token is in its output list: by then vLLM has waited for that step's
  sampled tokens, whose copy was queued after this one, so the read does not wait (an
  event checks that, and would wait rather than read early). The state machine
  (forcing.py) takes the decision then, just before it counts the decided token; a
  token that never arrives (vLLM drops the sample of a prompt chunk) leaves no decision.
One exception, at most once per request: when a request's last token could be a forced
extension, no later step would count it, so the processor waits for that answer and
writes the tally before the request ends.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import tempfile
from array import array
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
import torch
from vllm import SamplingParams
from vllm.sampling_params import SamplingType
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from thinkube.workloads.serving.forcing import ForcingPlan, ForcingState

if TYPE_CHECKING:
    from vllm.config import VllmConfig

log = logging.getLogger(__name__)

EXTRA_ARGS_KEY = "thinkube_budget_forcing"
_COUNTER = struct.Struct("<i")
_PARKED = 4096  # states of requests out of the batch (finished or preempted), newest kept


class Tally:
    """Shared int32 counters, one slot per in-flight request: the server acquires a slot,
    the engine process writes it, the server reads it when the request ends."""

    def __init__(self, slots: int = 65536):
        directory = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, self.path = tempfile.mkstemp(prefix="thinkube-tally-", dir=directory)
        os.ftruncate(fd, slots * _COUNTER.size)
        self._map = mmap.mmap(fd, slots * _COUNTER.size)
        os.close(fd)
        self._free = list(range(slots - 1, -1, -1))

    def acquire(self) -> int:
        if not self._free:
            raise RuntimeError("more requests in flight than budget-forcing tally slots")
        slot = self._free.pop()
        _COUNTER.pack_into(self._map, slot * _COUNTER.size, 0)
        return slot

    def read(self, slot: int) -> int:
        return _COUNTER.unpack_from(self._map, slot * _COUNTER.size)[0]

    def release(self, slot: int) -> None:
        self._free.append(slot)

    def close(self) -> None:
        self._map.close()
        os.unlink(self.path)


class _Writer:
    """The engine side of the tallies named by requests: opened once per file."""

    def __init__(self) -> None:
        self._maps: dict[str, mmap.mmap | None] = {}

    def write(self, path: str, slot: int, value: int) -> None:
        if path not in self._maps:
            try:
                with open(path, "r+b") as f:
                    self._maps[path] = mmap.mmap(f.fileno(), 0)
            except OSError as e:  # e.g. a worker on another host: counts are lost, not tokens
                log.warning("budget-forcing tally %s unavailable (%s): extensions will not be reported", path, e)
                self._maps[path] = None
        m = self._maps[path]
        if m is not None:
            _COUNTER.pack_into(m, slot * _COUNTER.size, value)


class _Decisions:
    """One step's answers, per deciding row, to "does the model try to end here?": on the
    device, copied to pinned host memory without waiting."""

    def __init__(self, ended: torch.Tensor, pin_memory: bool):
        self._host = torch.empty(ended.shape, dtype=torch.bool, pin_memory=pin_memory)
        self._host.copy_(ended, non_blocking=True)
        self._event = None if ended.device.type == "cpu" else torch.Event(ended.device)
        if self._event is not None:
            self._event.record()  # on the current stream, after the copy
        self._values = self._host.numpy()  # the pinned buffer itself, read without torch

    def ended(self, i: int) -> bool:
        if self._event is not None and not self._event.query():
            # Waits only for a request's last token; a step later the copy is done (module docstring).
            self._event.synchronize()
        return bool(self._values[i])


class _Request:
    def __init__(
        self,
        params: SamplingParams,
        args: dict,
        prompt_ids: list[int] | None,
        output_ids: list[int],
        max_model_len: int | None,
    ):
        self.state = ForcingState(ForcingPlan.from_args(args["plan"]))
        self.output_ids = output_ids  # vLLM's live list of this request's sampled tokens
        self.key = args["key"]
        self.tally = (args["tally"], args["slot"])
        self.reported = 0  # extensions last written to the tally
        # Sampling as the engine's sampler sees it (it raised a tiny temperature already).
        self.greedy = params.sampling_type == SamplingType.GREEDY
        self.temperature, self.top_p = params.temperature, params.top_p
        self.nucleus = np.float32(params.top_p) < 1  # as the sampler's float32 sees it
        self.generator = torch.Generator()
        self.generator.manual_seed(params.seed if params.seed is not None else int.from_bytes(os.urandom(8), "little"))
        # The output position of the request's last token: the engine stops it there.
        limits = [self.state.plan.max_tokens]
        if params.max_tokens is not None:
            limits.append(params.max_tokens)
        if max_model_len and prompt_ids is not None:
            limits.append(max_model_len - len(prompt_ids))
        self.last = min(limits) - 1
        # The decision taken on the device for output position `seen`: (seen, answers, index).
        self.pending: tuple[int, _Decisions, int] | None = None
        self.ahead = 0  # an extension reported before its token arrived (the request's last token)

    def catch_up(self) -> None:
        """Take the pending decision if its token arrived, then account for the new tokens."""
        if self.pending is not None:
            seen, decisions, i = self.pending
            self.pending, self.ahead = None, 0
            ids = self.output_ids
            if len(ids) > seen and ids[seen] >= 0 and decisions.ended(i):
                self.state.end_attempt()
        self.state.advance(self.output_ids)

    @property
    def extensions(self) -> int:
        return self.state.extensions + self.ahead


class BudgetForcingLogitsProcessor(LogitsProcessor):
    def __init__(self, vllm_config: VllmConfig | None, device: torch.device, is_pin_memory: bool):
        self.rows: dict[int, _Request] = {}  # persistent batch index -> request
        self.parked: OrderedDict[str, _Request] = OrderedDict()  # by request key, while out of the batch
        self.writer = _Writer()
        self.pin_memory = is_pin_memory
        self.max_model_len = vllm_config.model_config.max_model_len if vllm_config is not None else None

    @classmethod
    def validate_params(cls, sampling_params) -> None:
        args = (sampling_params.extra_args or {}).get(EXTRA_ARGS_KEY)
        if args is not None:
            ForcingPlan.from_args(args["plan"])  # raises ValueError naming the problem

    def is_argmax_invariant(self) -> bool:
        return False  # it forces tokens

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        for index in batch_update.removed:
            self._park(self.rows.pop(index, None))
        for index, params, prompt_ids, output_ids in batch_update.added:
            self._park(self.rows.pop(index, None))
            args = (params.extra_args or {}).get(EXTRA_ARGS_KEY)
            if args is not None:
                # A request back from preemption keeps its state (extensions cannot be re-derived).
                req = self.parked.pop(args["key"], None) or _Request(
                    params, args, prompt_ids, output_ids, self.max_model_len
                )
                req.output_ids = output_ids
                self.rows[index] = req
        for a, b, direction in batch_update.moved:
            ra, rb = self.rows.pop(a, None), self.rows.pop(b, None)
            if ra is not None:
                self.rows[b] = ra
            if rb is not None and direction == MoveDirectionality.SWAP:
                self.rows[a] = rb

    def _park(self, req: _Request | None) -> None:
        if req is None:
            return
        req.output_ids = []  # vLLM's list comes back with the request; a finished one's is freed
        self.parked[req.key] = req
        while len(self.parked) > _PARKED:
            self.parked.popitem(last=False)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.rows:
            return logits
        forced: list[tuple[int, int]] = []  # (row, token)
        greedy: list[tuple[int, _Request]] = []  # rows that decide whether the model tries to end
        sampled: list[tuple[int, _Request]] = []
        for row, req in self.rows.items():
            req.catch_up()
            tok = req.state.forced()
            if tok is not None:
                forced.append((row, tok))
            elif req.state.deciding:
                (greedy if req.greedy else sampled).append((row, req))
        if forced or greedy or sampled:
            ended = _Step(logits, forced, greedy, sampled, self.pin_memory).apply()
            if ended is not None:
                self._pend(ended, greedy + sampled)
        for req in self.rows.values():
            if req.extensions != req.reported:
                self.writer.write(*req.tally, req.extensions)
                req.reported = req.extensions
        return logits

    def _pend(self, ended: torch.Tensor, deciding: list[tuple[int, _Request]]) -> None:
        decisions = _Decisions(ended, self.pin_memory)
        for i, (_, req) in enumerate(deciding):
            req.pending = (req.state.seen, decisions, i)
            if req.state.seen >= req.last and req.state.end_choice()[1] and decisions.ended(i):
                req.ahead = 1  # no later step will take this decision: report it now


class _Step:
    """One step's logit edits, on the device, from one copy of the host's data. Rows are
    candidates: forced ones (their token is known), then greedy and sampled deciding ones
    (forced to the token end_attempt would choose, when the model tries to end)."""

    def __init__(
        self,
        logits: torch.Tensor,
        forced: list[tuple[int, int]],
        greedy: list[tuple[int, _Request]],
        sampled: list[tuple[int, _Request]],
        pin_memory: bool,
    ):
        self.logits, self.nf, self.ng, self.ns = logits, len(forced), len(greedy), len(sampled)
        deciding = greedy + sampled
        rows = [r for r, _ in forced] + [r for r, _ in deciding]
        toks = [t for _, t in forced] + [req.state.end_choice()[0] for _, req in deciding]
        # Each deciding row's stop tokens, as many for each (repeating its first): a [rows, m] block.
        m = max((len(req.state.plan.think_stop) for _, req in deciding), default=0)
        stops = [c for _, req in deciding for c in _padded(req.state.plan.think_stop, m)]
        reqs = [req for _, req in sampled]
        floats = (
            [q.temperature for q in reqs]
            + [q.top_p for q in reqs]
            + [float(torch.rand((), generator=q.generator)) for q in reqs]
        )  # host generators, as before
        self.nucleus = any(q.nucleus for q in reqs)
        # One buffer, one copy: the integers, then the floats' float64 bits (the sampler's
        # float32 values are exact in float64).
        ints = rows + toks + stops
        data = bytearray(array("q", ints).tobytes() + array("d", floats).tobytes())
        host = torch.frombuffer(data, dtype=torch.int64)
        dev = (host.pin_memory() if pin_memory else host).to(logits.device, non_blocking=True)
        n = len(rows)
        self.rows, self.toks, self.stops = dev[:n], dev[n : 2 * n], dev[2 * n : len(ints)].view(len(deciding), m)
        vals = dev[len(ints) :].view(torch.float64).float()
        self.temperature, self.top_p, self.u = vals[: self.ns], vals[self.ns : 2 * self.ns], vals[2 * self.ns :]

    def apply(self) -> torch.Tensor | None:
        """Edits the logits; returns, per deciding row, whether the model tries to end."""
        logits, nf, ng, ns = self.logits, self.nf, self.ng, self.ns
        if not (ng or ns):
            logits.index_fill_(0, self.rows, float("-inf"))
            logits[self.rows, self.toks] = 0.0
            return None
        parts = [torch.ones(nf, dtype=torch.bool, device=logits.device)] if nf else []  # forced rows end, always
        if ng:
            parts.append(self._greedy_ends())
        if ns:
            parts.append(self._sampled_ends())
            # Sampled rows never sample a stop: the end was decided above, from the model's odds.
            logits[self.rows[nf + ng :].unsqueeze(1), self.stops[ng:]] = float("-inf")
        ended = parts[0] if len(parts) == 1 else torch.cat(parts)
        keep = logits[self.rows, self.toks]
        row_forced = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
        row_forced[self.rows] = ended
        logits.masked_fill_(row_forced.unsqueeze(1), float("-inf"))
        logits[self.rows, self.toks] = torch.where(ended, 0.0, keep)  # a forced row samples its token only
        return ended[nf:]

    def _greedy_ends(self) -> torch.Tensor:
        """Greedy: the model tries to end exactly when its argmax is a stop token. One argmax
        over the whole batch costs less than gathering the rows first."""
        top = self.logits.argmax(-1)[self.rows[self.nf : self.nf + self.ng]]
        return (self.stops[: self.ng] == top.unsqueeze(1)).any(-1)

    def _sampled_ends(self) -> torch.Tensor:
        """Sampling: the model ends with the probability its sampler gives the stop tokens;
        otherwise they are masked, so the thinking token comes from the distribution
        conditioned on not ending: together exactly the resubmitting controller's odds."""
        x = self.logits[self.rows[self.nf + self.ng :]]
        probs = torch.softmax(x / self.temperature.unsqueeze(1), -1)
        if self.nucleus:
            ranked, order = probs.sort(-1, descending=True)
            keep = (ranked.cumsum(-1) - ranked) < self.top_p.unsqueeze(1)  # the nucleus the sampler draws from
            probs = torch.zeros_like(probs).scatter(-1, order, ranked * keep)
            probs = probs / probs.sum(-1, keepdim=True)
        stop = torch.zeros_like(probs, dtype=torch.bool).scatter_(1, self.stops[self.ng :], True)
        return self.u < (probs * stop).sum(-1)


def _padded(tokens: tuple[int, ...], m: int) -> tuple[int, ...]:
    return tokens + tokens[:1] * (m - len(tokens))
