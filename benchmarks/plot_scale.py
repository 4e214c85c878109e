"""Plot how search latency and ingest speed grow with cube size, from `cubemem bench scale` JSON.

    uv run python benchmarks/plot_scale.py docs/results/scale.json \
        docs/results/scale_precomputed.json --out docs/img/scale.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot(reports: list[dict], out: Path) -> None:
    fig, (lat, ing) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120)
    for report in reports:
        sizes = [r["items"] for r in report["sizes"]]
        label = report["embedder"]
        for name, style in (("unfiltered", "-o"), ("user", "--s"), ("user+tag", ":^")):
            lat.plot(
                sizes,
                [r["search_ms"][name]["p95"] for r in report["sizes"]],
                style,
                label=f"{name} ({label})",
            )
        ing.plot(sizes, [r["ingest_items_per_s"] for r in report["sizes"]], "-o", label=label)
    for ax in (lat, ing):
        ax.set_xscale("log")
        ax.set_xlabel("memories in the cube")
        ax.grid(alpha=0.3)
    lat.axhline(30, color="grey", linewidth=0.8)
    lat.set_ylabel("search p95 (ms)")
    lat.set_title("search latency")
    lat.legend(fontsize=6)
    ing.set_yscale("log")
    ing.set_ylabel("items/s")
    ing.set_title("ingest speed")
    ing.legend(fontsize=6)
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
