"""Plot the cost curve of a cube as it grows, from `cubemem bench scale` JSON: open time, RSS,
ingest speed and search p95 (unfiltered, one user, after an add), one line per engine.

    uv run python benchmarks/plot_scale.py docs/results/scale_curve.json --out docs/img/scale.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return report.get("results") or report["sizes"]  # "sizes": reports before 0.5


def plot(reports: list[dict], out: Path) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), dpi=120)
    opened, rss, ingest, latency = axes
    for report in reports:
        engines: dict[str, list[dict[str, Any]]] = {}
        for r in _rows(report):
            engines.setdefault(r.get("store", "sqlite"), []).append(r)
        for engine, rows in engines.items():
            label = engine if len(reports) == 1 else f"{engine} ({report['embedder']})"
            sizes = [r["items"] for r in rows]
            if all("open_s" in r for r in rows):
                opened.plot(sizes, [r["open_s"] for r in rows], "-o", label=label)
            rss.plot(sizes, [r["rss_mb"] for r in rows], "-o", label=label)
            ingest.plot(sizes, [r["ingest_items_per_s"] for r in rows], "-o", label=label)
            for name, style in (("unfiltered", "-o"), ("user", "--s"), ("after_add", ":^")):
                if all(name in r["search_ms"] for r in rows):
                    latency.plot(
                        sizes,
                        [r["search_ms"][name]["p95"] for r in rows],
                        style,
                        label=f"{name}, {label}",
                    )
    titles = (
        (opened, "open until the first search", "seconds"),
        (rss, "RSS of the reopened process", "MB"),
        (ingest, "ingest speed", "items/s"),
        (latency, "search p95", "ms"),
    )
    for ax, title, unit in titles:
        ax.set_xscale("log")
        ax.set_xlabel("memories in the cube")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    latency.axhline(30, color="grey", linewidth=0.8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/img/scale.png"))
    args = parser.parse_args()
    plot([json.loads(p.read_text()) for p in args.reports], args.out)
    print(args.out)


if __name__ == "__main__":
    main()
