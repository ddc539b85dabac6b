"""Pure manifest builders, one module per kind: (resource body, resolved inputs, defaults) -> children."""
from __future__ import annotations

from typing import Callable, Mapping

from thinkube.operator.builders import curation, evaluation, server, sft
from thinkube.operator.builders.common import Defaults, Resolved
from thinkube.operator.builders.settle import settle

Builder = Callable[[Mapping, Resolved, Defaults], list[dict]]
BUILDERS: dict[str, Builder] = {
    "CurationJob": curation.build,
    "SFTRun": sft.build,
    "BudgetForcedServer": server.build,
    "EvalSweep": evaluation.build,
}

__all__ = ["BUILDERS", "Builder", "Defaults", "Resolved", "settle"]
