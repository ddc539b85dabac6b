"""Pull the final answer out of a model's answer text, without any API call.

s1 grades the text after the answer delimiter: the last `\\boxed{...}`, else what follows
the last "Answer:". The reference code asked gpt-4o-mini to do this and, for multiple
choice, silently fell back to "A"; here extraction is deterministic and returns None when
nothing is found, so the caller can count the item as unextracted (and wrong).
"""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BARE_BOX_TOKEN = re.compile(r"[^\s$]+")  # `\boxed 5`
# Formatting around an answer that does not change it: \textbf{C}, \mathbf{42}, \text{(A)}.
FORMATTING = re.compile(r"\\(?:text|textbf|textrm|textit|mathrm|mathbf|mathit|mbox|bm|boldsymbol)\s*\{([^{}]*)\}")
# "Answer:", "Final Answer:", "**Final Answer**:", "Answer :" ... (case-insensitive).
_ANSWER_MARKER = re.compile(r"(?:final\s+)?answer\s*(?:\*\*|__)?\s*[:：]", re.IGNORECASE)
_ANSWER_IS = re.compile(r"\b(?:final\s+)?answer\s+is\s*[:：]?\s*", re.IGNORECASE)
# A whole answer this short on one line, and not prose, is the answer itself ("42", "$\frac{1}{2}$").
_BARE_ANSWER_MAX_CHARS = 40
_INLINE_MATH = re.compile(r"\$([^$]+)\$|\\\((.+?)\\\)")


def _is_prose(text: str) -> bool:
    """Two words in a row outside LaTeX commands: a sentence, not an answer ("10 inches" is not prose)."""
    return re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+", " ", text)) is not None


def _brace_pairs(text: str) -> dict[int, int]:
    """Each `{` that closes -> the index of its `}`, in one pass (a truncated group has no entry).

    One pass, not a scan per box: a looping generation of `\\boxed{` repeated thousands of
    times would otherwise take quadratic time to grade.
    """
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for i, c in enumerate(text):
        if c not in "{}" or (i > 0 and text[i - 1] == "\\"):  # `\{` / `\}` are literal braces (sets)
            continue
        if c == "{":
            stack.append(i)
        elif stack:
            pairs[stack.pop()] = i
    return pairs


def _boxes(text: str) -> list[str]:
    """Contents of every complete top-level `\\boxed{}`/`\\fbox{}` (and `\\boxed 5`), in order."""
    found: list[str] = []
    pairs: dict[int, int] | None = None
    i = 0
    for m in _BOX.finditer(text):
        if m.start() < i:  # inside a box already taken
            continue
        j = m.end()
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            pairs = _brace_pairs(text) if pairs is None else pairs
            end = pairs.get(j)
            if end is None:  # truncated output: skip this box, keep earlier complete ones
                i = j + 1
                continue
            found.append(text[j + 1 : end])
            i = end + 1
        elif m.end() < j < len(text):  # `\boxed 5`: one token up to whitespace or `$`
            token = _BARE_BOX_TOKEN.match(text, j)
            if token is None:  # `\boxed $`: nothing to take
                i = j + 1
                continue
            found.append(token.group(0))
            i = token.end()
        else:
            i = j
    return found


def last_boxed(text: str) -> str | None:
    """The content of the last complete box, with boxes nested inside it unwrapped."""
    boxes = _boxes(text)
    if not boxes:
        return None
    content = boxes[-1].strip()
    inner = _boxes(content)
    # `\boxed{\boxed{5}}`: the inner box is the whole content, so it is the answer.
    while len(inner) == 1 and content in (f"\\boxed{{{inner[0]}}}", f"\\fbox{{{inner[0]}}}"):
        content = inner[0].strip()
        inner = _boxes(content)
    return content


def _clean(candidate: str) -> str:
    """Strip the decoration around an answer written in prose: `$...$`, bold, trailing period."""
    s = candidate.strip()
    s = re.sub(r"^(?:\*\*|__)+|(?:\*\*|__)+$", "", s).strip()
    if s.startswith("\\[") and s.endswith("\\]"):
        s = s[2:-2].strip()
    if s.startswith("\\(") and s.endswith("\\)"):
        s = s[2:-2].strip()
    s = s.strip("$ ").rstrip(".").strip("$ ")
    return s


def _after_marker(text: str, pattern: re.Pattern) -> str | None:
    matches = list(pattern.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :]
    line = next((ln for ln in rest.splitlines() if ln.strip()), "")  # "Answer:\n\n42": a later line
    inner = _ANSWER_IS.search(line)
    if inner:  # "Final Answer: The final answer is $3$. I hope it is correct."
        line = line[inner.end() :]
    maths = [a or b for a, b in _INLINE_MATH.findall(line)]
    if maths and _is_prose(_INLINE_MATH.sub(" ", line)):  # "the area is $12$ square units"
        return maths[-1].strip()
    return _clean(line) or None


def extract_answer(text: str | None) -> str | None:
    """The final answer in `text` (the answer part of a generation), or None.

    Order: last complete `\\boxed{}`; else the line after the last "Answer:"/"Final Answer:";
    else after the last "the answer is"; else the whole text when it is one short line. A
    fallback never returns a truncated box (`\\boxed{\\frac{1}{2}` cut off): such an
    answer was not finished, so it is unextracted.
    """
    if not text or not text.strip():
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed or None
    for pattern in (_ANSWER_MARKER, _ANSWER_IS):
        found = _after_marker(text, pattern)
        if found:
            return None if _BOX.search(found) else found
    whole = _clean(text)
    if (
        whole
        and "\n" not in whole
        and len(whole) <= _BARE_ANSWER_MAX_CHARS
        and not _is_prose(whole)
        and not _BOX.search(whole)
    ):
        return whole
    return None


def extract_choice(text: str | None, letters: str = "ABCD") -> str | None:
    """The chosen option letter in `text`, or None; never a default letter.

    Accepts `\\boxed{C}`, `\\boxed{\\text{(C)}}`, "Answer: C", "Answer: (C) 3.2 eV",
    "Answer: \\textbf{C}", 'Answer: "C"', "the answer is C", "correct option is **C**", and an
    answer whose first or last line is just the letter ("C", "(C)", "C.", "C) 3.2 eV"). Only
    the given letters count, upper case only outside boxes, as lm-evaluation-harness's GPQA
    filters read them: "the answer is c" is unextracted, and a lone "a" in prose is the
    article, not option A.
    """
    if not text or not text.strip():
        return None
    cls = f"[{re.escape(letters)}]"
    bare = re.compile(rf"^[\s*_]*\(?({cls})(?:\)|[.:]|[*_\s]*$)")
    boxed = last_boxed(text)
    if boxed is not None:
        m = bare.match(FORMATTING.sub(r"\1", boxed).strip().upper())
        if m:
            return m.group(1)
    text = FORMATTING.sub(r"\1", text)
    phrased = re.compile(
        rf"(?:answer|option|choice)(?:\s+is)?\s*(?:\*\*|__)?\s*[:：]?\s*(?:\*\*|__)?\s*\$?[\"'“‘]?\(?({cls})\)?[\"'”’]?"
        rf"(?![A-Za-z0-9])",
        re.IGNORECASE,
    )
    hits = [m for m in phrased.finditer(text) if m.group(1) in letters]  # letter itself must be upper case
    if hits:
        return hits[-1].group(1)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    for line in (lines[-1], lines[0]):
        m = bare.match(line)
        if m:
            return m.group(1)
    return None
