"""Evaluation workload (`thinkube eval`): benchmarks, offline grading, test-time scaling sweeps.

Modules, one job each:
    benchmarks  load AIME / MATH-500 / GPQA Diamond / generic files into BenchmarkItems
    settings    budget settings (max_thinking_tokens, num_ignore) and their grid
    targets     the Target protocol, the HTTP target over the shared chat client, make_target
    records     append-only, resumable JSONL record files
    sweep       target x benchmarks x settings x n samples, bounded and resumable
    metrics     accuracy, pass@k, maj@k, thinking tokens; s1's Control/Scaling/Performance
    report      results.json, results.md, accuracy-vs-thinking plot
    cli         the `thinkube eval` command
Grading (extraction, offline verdicts, the LLM judge) lives in thinkube.workloads.grading and
the chat client in thinkube.workloads.llm, both shared with curation.
"""
