from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTRACT = ["demo", "curate", "train", "serve", "eval", "operator", "api"]


def test_help_lists_every_contract_command():
    out = subprocess.run(
        [sys.executable, "-m", "thinkube.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in CONTRACT:
        assert f"    {name} " in out, name


def test_every_package_folder_is_packaged():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, dirs = set(cfg["packages"]), cfg["package-dir"]
    found = set()
    for pkg, folder in dirs.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((pkg, *rel)))
    assert found == listed, f"pyproject packages differ: missing {found - listed}, stale {listed - found}"


def test_operator_subpackage_does_not_shadow_stdlib():
    import operator

    import thinkube.operator

    assert hasattr(operator, "itemgetter") and thinkube.operator.__name__ == "thinkube.operator"
