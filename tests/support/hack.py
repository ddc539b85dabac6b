"""The hack/ scripts as modules, for tests and benchmarks: hack/ is a folder of scripts, not a package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HACK = Path(__file__).resolve().parents[2] / "hack"


def load(name: str):
    """hack/<name>.py, loaded once under the name hack/cluster.py gives its own siblings."""
    module = f"thinkube_hack_{name}"
    if module not in sys.modules:
        spec = importlib.util.spec_from_file_location(module, HACK / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)
    return sys.modules[module]
