"""Precision and recall of ``cubemem.redact`` on a written test set (``data/pii.json``):
``uv run cubemem bench redaction --json docs/results/redaction.json``.

A finding is right when its kind and its exact text are labelled in the sentence; a labelled
item not found is missed; anything else found is a false positive."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from cubemem.model.governance import KINDS, RedactionPolicy
from cubemem.redact import Redactor

DATA = Path(__file__).with_name("data") / "pii.json"


def evaluate(
    data: dict[str, Any], policy: RedactionPolicy | None = None, *, hard: bool | None = None
) -> dict[str, Any]:
    """Scores on the set's items (``hard``: only the hard ones, or only the others; None:
    all)."""
    redactor = Redactor(policy or RedactionPolicy.all("mask"))
    items = [i for i in data["items"] if hard is None or bool(i.get("hard")) == hard]
    right: Counter[str] = Counter()
    found_by: Counter[str] = Counter()
    labelled: Counter[str] = Counter()
    missed, false_positives = [], []
    for item in items:
        text = item["text"]
        expected = {(kind, value) for kind, value in item["pii"]}
        found = {(f.kind, text[f.start : f.end]) for f in redactor.find(text)}
        for kind, _ in expected:
            labelled[kind] += 1
        for kind, value in found:
            found_by[kind] += 1
            if (kind, value) in expected:
                right[kind] += 1
            else:
                false_positives.append({"text": text, "kind": kind, "found": value})
        missed += [{"text": text, "kind": k, "value": v} for k, v in expected - found]

    def scores(r: int, f: int, n: int) -> dict[str, float | int]:
        return {
            "labelled": n,
            "found": f,
            "right": r,
            "precision": round(r / f, 4) if f else 1.0,
            "recall": round(r / n, 4) if n else 1.0,
        }

    return {
        "sentences": len(items),
        "negatives": sum(1 for i in items if not i["pii"]),
        "overall": scores(sum(right.values()), sum(found_by.values()), sum(labelled.values())),
        "by_kind": {k: scores(right[k], found_by[k], labelled[k]) for k in KINDS},
        "missed": missed,
        "false_positives": false_positives,
    }


def report(data: dict[str, Any]) -> dict[str, Any]:
    """The whole set, the items written first, and the hard ones apart."""
    return {
        "all": evaluate(data),
        "written_first": evaluate(data, hard=False),
        "hard": evaluate(data, hard=True),
    }
