"""Data records and the s1 chat format shared by curation, training, serving and evaluation."""

from thinkube.workloads.formats.chat import (
    CHAT_FORMATS,
    QWEN_SYSTEM_PROMPT,
    S1_FORMAT,
    THINK_TAGS_FORMAT,
    ChatFormat,
    Completion,
    render_completion,
    render_generation_prompt,
    render_prompt,
    render_training_example,
    split_completion,
)
from thinkube.workloads.formats.records import S1Record, iter_rows, load_records, save_records

__all__ = [
    "CHAT_FORMATS",
    "QWEN_SYSTEM_PROMPT",
    "S1_FORMAT",
    "THINK_TAGS_FORMAT",
    "ChatFormat",
    "Completion",
    "S1Record",
    "iter_rows",
    "load_records",
    "render_completion",
    "render_generation_prompt",
    "render_prompt",
    "render_training_example",
    "save_records",
    "split_completion",
]
