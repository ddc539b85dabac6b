"""Type-check the thinkube package with mypy: `python hack/typecheck.py [mypy args]`.

The repository's api/, operator/ and workloads/ folders are subpackages of `thinkube` (see
package-dir in pyproject.toml), a layout mypy cannot follow from the source tree. This lays
the package out as it is installed, with symbolic links in a temporary folder, and checks it
there with the settings in pyproject.toml.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("api", "operator", "workloads")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="thinkube-typecheck-") as tmp:
        package = Path(tmp) / "thinkube"
        package.mkdir()
        for entry in (ROOT / "src" / "thinkube").iterdir():
            if entry.name != "__pycache__":
                (package / entry.name).symlink_to(entry)
        for name in SUBPACKAGES:
            (package / name).symlink_to(ROOT / name)
        env = {**os.environ, "MYPYPATH": tmp}
        cmd = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "-p",
            "thinkube",
            *sys.argv[1:],
        ]
        # Run from the temporary folder so that mypy's paths name the package's modules; its
        # messages are rewritten to the repository's own paths.
        out = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        text = out.stdout + out.stderr
        for name in SUBPACKAGES:
            text = text.replace(f"thinkube/{name}/", f"{name}/")
        text = text.replace("thinkube/", "src/thinkube/")
        print(text, end="")
        return out.returncode


if __name__ == "__main__":
    sys.exit(main())
