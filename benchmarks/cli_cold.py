"""How long ``cubemem`` commands take cold — a new process each time, as a shell runs them —
on a cube of a few memories: the wall time of the whole command (interpreter start included),
the median of ``--runs`` runs. Prints JSON, then a table.

    uv run python benchmarks/cli_cold.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def cubemem(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cubemem.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cubemem {' '.join(args)} failed: {done.stderr}")
    return took, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="cubemem-cli-cold-") as tmp:
        cube = str(Path(tmp) / "cube")
        root = str(Path(tmp) / "root")
        cubemem("init", cube)
        _, out = cubemem("add", "Ana likes green tea", "-c", cube)
        memory_id = out.strip()
        cubemem("cubes", "create", "team", "--data", root)
        commands = {
            "--help": ["--help"],
            "stats": ["stats", "-c", cube, "--json"],
            "list": ["list", "-c", cube, "--json"],
            "show": ["show", memory_id, "-c", cube],
            "export": ["export", str(Path(tmp) / "out.zip"), "-c", cube],
            "agents list": ["agents", "list", "--data", root, "--json"],
            "cubes list": ["cubes", "list", "--data", root, "--json"],
            "init": None,  # a new folder each run
            "search (loads the model)": ["search", "tea", "-c", cube, "--json"],
        }
        report = {}
        for name, args in commands.items():
            times = []
            for n in range(runs):
                wanted = args if args is not None else ["init", str(Path(tmp) / f"new{n}")]
                times.append(cubemem(*wanted)[0])
            report[name] = round(statistics.median(times), 3)
    print(json.dumps({"runs": runs, "median_s": report}, indent=2))
    print(f"\n{'command':<28} {'median s':>9}")
    for name, seconds in report.items():
        print(f"{name:<28} {seconds:>9.3f}")


if __name__ == "__main__":
    main()
