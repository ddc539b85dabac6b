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
"""
from __future__ import annotations

import logging
import mmap
import os
import struct
import tempfile
from collections import OrderedDict

import torch
from vllm import SamplingParams
from vllm.sampling_params import SamplingType
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from thinkube.workloads.serving.forcing import ForcingPlan, ForcingState

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


class _Request:
    def __init__(self, params: SamplingParams, args: dict, output_ids: list[int]):
        self.state = ForcingState(ForcingPlan.from_args(args["plan"]))
        self.output_ids = output_ids  # vLLM's live list of this request's sampled tokens
        self.key = args["key"]
        self.tally = (args["tally"], args["slot"])
        self.reported = 0  # extensions last written to the tally
        # Sampling as the engine's sampler sees it (it raised a tiny temperature already).
        self.greedy = params.sampling_type == SamplingType.GREEDY
        self.temperature, self.top_p = params.temperature, params.top_p
        self.generator = torch.Generator()
        self.generator.manual_seed(params.seed if params.seed is not None else int.from_bytes(os.urandom(8), "little"))


class BudgetForcingLogitsProcessor(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        self.rows: dict[int, _Request] = {}  # persistent batch index -> request
        self.parked: OrderedDict[str, _Request] = OrderedDict()  # by request key, while out of the batch
        self.writer = _Writer()

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
        for index, params, _, output_ids in batch_update.added:
            self._park(self.rows.pop(index, None))
            args = (params.extra_args or {}).get(EXTRA_ARGS_KEY)
            if args is not None:
                # A request back from preemption keeps its state (extensions cannot be re-derived).
                req = self.parked.pop(args["key"], None) or _Request(params, args, output_ids)
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
        forced: dict[int, int] = {}
        greedy: list[int] = []
        sampled: list[int] = []
        for row, req in self.rows.items():
            st = req.state
            st.advance(req.output_ids)
            tok = st.forced()  # may take back a decision whose token the engine discarded
            if tok is not None:
                forced[row] = tok
            elif st.deciding:
                (greedy if req.greedy else sampled).append(row)
        if greedy:
            # Greedy: the model tries to end exactly when its argmax is a stop token. One
            # argmax over the whole batch costs less than gathering the rows first.
            top = logits.argmax(-1).tolist()
            for row in greedy:
                if top[row] in self.rows[row].state.plan.think_stop:
                    forced[row] = self.rows[row].state.end_attempt()
        if sampled:
            self._decide_sampled(logits, sampled, forced)
        if forced:
            rows = torch.tensor(list(forced), device=logits.device)
            logits[rows] = float("-inf")
            logits[rows, torch.tensor(list(forced.values()), device=logits.device)] = 0.0
        for req in self.rows.values():
            if req.state.extensions != req.reported:
                self.writer.write(*req.tally, req.state.extensions)
                req.reported = req.state.extensions
        return logits

    def _decide_sampled(self, logits: torch.Tensor, rows: list[int], forced: dict[int, int]) -> None:
        """Sampling: the model ends with the probability its sampler gives the stop tokens;
        otherwise they are masked, so the thinking token comes from the distribution
        conditioned on not ending: together exactly the resubmitting controller's odds."""
        reqs = [self.rows[r] for r in rows]
        plans = [req.state.plan for req in reqs]
        r_idx = [i for i, p in enumerate(plans) for _ in p.think_stop]
        c_idx = [c for p in plans for c in p.think_stop]
        probs = torch.softmax(logits[rows] / torch.tensor([[q.temperature] for q in reqs], device=logits.device), -1)
        top_p = torch.tensor([[q.top_p] for q in reqs], device=logits.device)
        if (top_p < 1).any():
            ranked, order = probs.sort(-1, descending=True)
            keep = (ranked.cumsum(-1) - ranked) < top_p  # the nucleus the sampler draws from
            probs = torch.zeros_like(probs).scatter(-1, order, ranked * keep)
            probs = probs / probs.sum(-1, keepdim=True)
        stop = torch.zeros_like(probs, dtype=torch.bool)
        stop[r_idx, c_idx] = True
        p_end = (probs * stop).sum(-1).tolist()
        masked_rows: list[int] = []
        masked_cols: list[int] = []
        for i, (row, p) in enumerate(zip(rows, p_end)):
            if float(torch.rand((), generator=reqs[i].generator)) < p:
                forced[row] = reqs[i].state.end_attempt()
            else:
                masked_rows += [row] * len(plans[i].think_stop)
                masked_cols += plans[i].think_stop
        if masked_rows:
            logits[masked_rows, masked_cols] = float("-inf")
