"""Each retrieval signal on and off on a user–assistant file (BEAM), and plain dense search:
the measurements behind ``RetrievalConfig.chat`` and ``assistant_factor``.

    uv run python benchmarks/chat_signals.py --data ../shared/data/beam/beam100k_dev.json \\
        --json docs/results/chat_signals.json

Every variant runs ``cubemem bench locomo``'s raw-turn benchmark (one cube per conversation)
with the knobs it names; it prints R@1/5/10 overall and R@10 by BEAM ability.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from cubemem.bench import locomo
from cubemem.retrieve import RetrievalConfig

SPREADS = {"neighbour_share": 0.0, "second_neighbour_share": 0.0, "session_share": 0.0}
VARIANTS: dict[str, dict[str, Any]] = {
    "shipped (chat knobs, assistant 0.85)": {},
    "chat knobs off (the LoCoMo signals)": {"chat": (), "assistant_factor": 1.0},
    "chat knobs, assistant factor off": {"assistant_factor": 1.0},
    "chat knobs + entity graph": {"chat": (("lexical_weight", 0.1), *SPREADS.items())},
    "chat knobs + neighbour/session shares": {
        "chat": (("entity_weight", 0.0), ("lexical_weight", 0.1))
    },
    "chat knobs, lexical 0.3": {
        "chat": (("entity_weight", 0.0), ("lexical_weight", 0.3), *SPREADS.items())
    },
    "plain dense": {
        "chat": (),
        "assistant_factor": 1.0,
        "lexical_weight": 0.0,
        "entity_weight": 0.0,
        "time_weight": 0.0,
        **SPREADS,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out: dict[str, Any] = {}
    embedder = None
    for name, knobs in VARIANTS.items():
        config = replace(RetrievalConfig(), **knobs)
        report = locomo.run(args.data, ks=(1, 5, 10), retrieval=config, embedder=embedder)
        by_ability = {a: r["10"] for a, r in report["recall_by_ability"].items()}
        out[name] = {"recall": report["recall"], "recall_10_by_ability": by_ability}
        print(name, json.dumps(out[name]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
