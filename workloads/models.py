"""Where a model comes from: the built-in tiny model, a local folder, a PVC, or a Hub id."""

from __future__ import annotations

from pathlib import Path

from thinkube.workloads.uris import local_path, parse_uri

TINY = "tiny"  # the built-in model: `--model tiny`


def resolve_model(uri: str) -> tuple[str, str | None]:
    """Map a model URI to what `from_pretrained` / vLLM take: (path or Hub id, revision).

    Local folders must exist and hold a config.json, so a typo fails here with the path
    rather than as a Hub download attempt deep inside transformers.
    """
    if uri == TINY:
        from thinkube.workloads.tiny_model import ensure_tiny_model

        return str(ensure_tiny_model()), None
    parsed = parse_uri(uri)
    if parsed.scheme == "hf":
        return parsed.location, parsed.revision
    path: Path = local_path(uri)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model {uri!r}: no config.json in {path}; give a folder saved with save_pretrained, "
            f"hf://<org>/<name>, or {TINY!r} for the built-in tiny model"
        )
    return str(path), None
