"""Where the tests find the project's own files."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "thinkube"
