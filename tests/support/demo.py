"""The reduced demo the end-to-end and node tests run: the same stages at sizes that finish in minutes."""

from __future__ import annotations

SMALL = ["--pool-size", "200", "--benchmark-size", "24", "--select", "120", "--epochs", "2", "--budgets", "4,40",
         "--num-ignore", "1"]  # fmt: skip
