"""Evaluation workload (`thinkube eval`): benchmarks, offline grading, test-time scaling sweeps.

Modules, one job each:
    benchmarks  load AIME / MATH-500 / GPQA Diamond / generic files into BenchmarkItems
    extract     find the final answer (boxed, "Answer:", option letter) in answer text
    grade       decide correctness offline (integer, math-verify equivalence, letter)
    timelimit   wall-clock limits for symbolic grading in any thread or process
    judge       optional LLM judge through an OpenAI-compatible endpoint
    settings    budget settings (max_thinking_tokens, num_ignore) and their grid
    targets     the Target protocol, the HTTP target, the in-process factory hook
    records     append-only, resumable JSONL record files
    sweep       target x benchmarks x settings x n samples, bounded and resumable
    metrics     accuracy, pass@k, maj@k, thinking tokens; s1's Control/Scaling/Performance
    report      results.json, results.md, accuracy-vs-thinking plot
    cli         the `thinkube eval` command
"""
