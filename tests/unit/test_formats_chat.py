from __future__ import annotations

import dataclasses

import pytest

from thinkube.workloads.formats import (
    S1_FORMAT,
    THINK_TAGS_FORMAT,
    ChatFormat,
    S1Record,
    render_completion,
    render_generation_prompt,
    render_prompt,
    render_training_example,
    split_completion,
)

QWEN_SYSTEM = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"


def test_render_prompt_is_the_qwen_layout():
    assert render_prompt("What is 2+2?") == (
        QWEN_SYSTEM + "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render_prompt("q", THINK_TAGS_FORMAT, system_prompt="Be brief.") == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    )


def test_render_generation_prompt_opens_thinking():
    assert render_generation_prompt("q") == (
        QWEN_SYSTEM + "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<|im_start|>think\n"
    )
    assert render_generation_prompt("q", THINK_TAGS_FORMAT) == (
        QWEN_SYSTEM + "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )


def test_render_completion_both_presets():
    assert render_completion("step 1\nstep 2", "Answer: 4") == (
        "<|im_start|>think\nstep 1\nstep 2\n<|im_start|>answer\nAnswer: 4<|im_end|>"
    )
    assert render_completion("step 1\nstep 2", "Answer: 4", THINK_TAGS_FORMAT) == (
        "<think>\nstep 1\nstep 2\n</think>\nAnswer: 4<|im_end|>"
    )


def test_end_of_thinking():
    assert S1_FORMAT.end_of_thinking == "<|im_start|>answer"
    assert THINK_TAGS_FORMAT.end_of_thinking == "</think>"


def test_chat_format_validation_and_frozen():
    with pytest.raises(ValueError, match="not both"):
        ChatFormat(think_end="</think>")
    with pytest.raises(ValueError, match="needs answer_start or think_end"):
        ChatFormat(answer_start="")
    with pytest.raises(dataclasses.FrozenInstanceError):
        S1_FORMAT.im_end = "x"


TRICKY = [
    ("Let me think.\nWait, 2+2 is 4.\nWait, check again.", "Answer: 4"),
    ("one line", ""),  # empty answer
    ("The answer is probably 7, but the word answer appears.\nanswer: maybe", "7"),
    ("Unicode: ∫ x dx = x²/2, 日本語, émoji 🤔\n\n\nblank lines above", "$\\boxed{\\frac{1}{2}}$"),
    ("mentions <think> mid-trace\n<|im_start|>user\nnot a real turn", "multi\nline\nanswer"),
]


@pytest.mark.parametrize("fmt", [S1_FORMAT, THINK_TAGS_FORMAT], ids=["s1", "tags"])
@pytest.mark.parametrize("thinking, answer", TRICKY)
def test_round_trip(fmt, thinking, answer):
    done = split_completion(render_completion(thinking, answer, fmt), fmt)
    assert (done.thinking, done.answer, done.finished_thinking) == (thinking, answer, True)


def test_each_preset_ignores_the_other_delimiter():
    thinking = "mentions <|im_start|>answer and </think> inside"
    for fmt in (S1_FORMAT, THINK_TAGS_FORMAT):
        other = THINK_TAGS_FORMAT if fmt is S1_FORMAT else S1_FORMAT
        trace = thinking.replace(fmt.end_of_thinking, "")  # only the other preset's delimiter stays
        done = split_completion(render_completion(trace, "ok", fmt), fmt)
        assert other.end_of_thinking in trace and (done.thinking, done.answer) == (trace, "ok")


def test_split_truncated_generation():
    done = split_completion("<|im_start|>think\nFirst, 3*3 = 9.\nWait, and then")
    assert (done.thinking, done.answer, done.finished_thinking) == ("First, 3*3 = 9.\nWait, and then", "", False)
    done = split_completion("<think>\nhalf a thought", THINK_TAGS_FORMAT)
    assert (done.thinking, done.finished_thinking) == ("half a thought", False)


def test_split_generation_continuing_the_prompt():
    # The generation prompt already ends with think_start + "\n": the model's text lacks it.
    done = split_completion("3*3 = 9.\n<|im_start|>answer\nAnswer: 9<|im_end|><|endoftext|>junk")
    assert (done.thinking, done.answer, done.finished_thinking) == ("3*3 = 9.", "Answer: 9", True)
    done = split_completion("3*3 = 9.\n</think>\n\nAnswer: 9\n<|im_end|>\n", THINK_TAGS_FORMAT)
    assert (done.thinking, done.answer, done.finished_thinking) == ("3*3 = 9.", "Answer: 9", True)


def test_split_uses_first_delimiter_and_answer_without_im_end():
    done = split_completion("<|im_start|>think\nA\n<|im_start|>answer\nB\n<|im_start|>answer\nC")
    assert (done.thinking, done.answer) == ("A", "B\n<|im_start|>answer\nC")


def test_render_training_example_from_record_and_mapping():
    rec = S1Record(question="What is 2+2?", thinking="2+2=4", attempt="The answer is 4", id="r7")
    prompt, completion = render_training_example(rec)
    assert prompt == render_prompt("What is 2+2?")
    assert completion == "<|im_start|>think\n2+2=4\n<|im_start|>answer\nThe answer is 4<|im_end|>"
    fields = {"question": "q", "thinking": "t", "attempt": "a"}
    assert render_training_example(fields, THINK_TAGS_FORMAT, system_prompt="S") == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n",
        "<think>\nt\n</think>\na<|im_end|>",
    )


def test_render_training_example_names_incomplete_record():
    with pytest.raises(ValueError, match="record id='r9': missing attempt"):
        render_training_example(S1Record(question="q", thinking="t", id="r9"))
    with pytest.raises(ValueError, match="record index 12: missing thinking, attempt"):
        render_training_example({"question": "q", "thinking": "  "}, index=12)
