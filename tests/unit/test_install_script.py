"""hack/install's choice of package sources, read from its --dry-run (nothing is downloaded)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def plan(shared: Path, *args: str, **env: str) -> str:
    r = subprocess.run(
        ["bash", str(REPO / "hack" / "install"), "--dry-run", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "THINKUBE_SHARED": str(shared), **env},
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_local_cpu_torch_wheel_is_installed_first_and_no_index_is_added(tmp_path):
    (tmp_path / "wheels").mkdir()
    wheel = tmp_path / "wheels" / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.touch()
    out = plan(tmp_path)
    assert f"+ pip install -q {wheel}" in out and f"--find-links {tmp_path}/wheels -e .[all,serve-cpu]" in out
    assert CPU_INDEX not in out and "torch from the local wheel" in out


def test_without_local_wheels_torch_comes_from_pytorchs_cpu_index_and_says_so(tmp_path):
    out = plan(tmp_path)
    assert f"+ pip install -q {CPU_INDEX} -e .[all,serve-cpu]" in out
    assert "torch from PyTorch's CPU index" in out and "uninstall -y -q torchvision" in out


def test_a_gpu_machine_chooses_the_serve_gpu_extra_by_flag_or_environment(tmp_path):
    for out in (plan(tmp_path, "--gpu"), plan(tmp_path, THINKUBE_VARIANT="gpu")):
        assert "+ pip install -q -e .[all,serve-gpu]" in out
        assert CPU_INDEX not in out and "torchvision" not in out


def test_a_wrong_option_is_refused_naming_the_choices(tmp_path):
    r = subprocess.run(["bash", str(REPO / "hack" / "install"), "--cuda"], capture_output=True, text=True)
    assert r.returncode == 2 and "--gpu, --cpu, --dry-run" in r.stderr
