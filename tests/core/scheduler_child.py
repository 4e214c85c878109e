"""A child process for the reliability tests: writes through the queue, prints what is acked.

    python scheduler_child.py CUBE QUEUE_URL PREFIX START COUNT BATCH [--wait]

Adds items ``PREFIX-START .. PREFIX-(START+COUNT-1)`` with ``wait=False``, BATCH per call, and
prints ``ACK <id> <text>`` for each acknowledged one (flushed at once, so a parent that kills
this process knows exactly what was acknowledged). With ``--wait`` it then waits until its
own items are stored and prints ``DONE``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from cubemem import MemCube, Settings


def main() -> None:
    cube_path, queue, prefix, start, count, batch = sys.argv[1:7]
    start, count, batch = int(start), int(count), int(batch)
    cube = MemCube.open(cube_path, settings=Settings(queue_url=queue))
    print("READY", flush=True)
    acked: list[str] = []
    for first in range(start, start + count, batch):
        # five-digit numbers: BM25 keeps tokens of two or more characters, so "item 4" alone
        # would not tell 4 from 40 or 400 when the test searches for each text
        texts = [
            f"{prefix}-{n:05d} remembers item {n:05d}"
            for n in range(first, min(first + batch, start + count))
        ]
        ids = cube.add(texts, scope={"user": prefix}, wait=False)
        acked += ids
        sys.stdout.write("".join(f"ACK {i} {t}\n" for i, t in zip(ids, texts, strict=True)))
        sys.stdout.flush()
    if "--wait" in sys.argv:
        if not cube.scheduler.wait(acked, timeout=600):
            print("TIMEOUT", flush=True)
            sys.exit(1)
        print("DONE", flush=True)
    cube.close()
    # Everything is stored and closed. Leave without the interpreter's teardown: under load a
    # native thread pool (torch) was once torn down mid-exit with SIGABRT, after DONE, which
    # says nothing about the writes this test checks.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
