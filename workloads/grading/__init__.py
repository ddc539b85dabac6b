"""Grading, shared by evaluation (sweep records) and curation (difficulty, teacher attempts).

Modules, one job each:
    extract    find the final answer (boxed, "Answer:", option letter) in answer text
    grade      decide correctness offline (integer, math-verify equivalence, letter)
    timelimit  wall-clock limits for symbolic grading in any thread or process
    judge      optional LLM judge through an OpenAI-compatible endpoint
"""
