"""A child process for the versioned-write tests: edits one keyed memory over and over.

    python edit_child.py CUBE NAME COUNT

Alternates ``update``, ``put`` and ``refresh`` + ``search`` of the memory under
``("team", "fact")`` and prints ``ACK <version> <text>`` for every acknowledged edit.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from datetime import timedelta

from cubemem import MemCube
from cubemem.model import address_id

NAMESPACE, KEY, TTL = ("team", "fact"), "fact", timedelta(hours=1)


def main() -> None:
    path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cube = MemCube.open(path)
    id_ = address_id(NAMESPACE, KEY)
    print("READY", flush=True)
    for n in range(count):
        text = f"{name} edit {n:05d} of the shared fact"
        item = cube.update(id_, text) if n % 2 else cube.put(NAMESPACE, KEY, text, ttl=TTL)
        print(f"ACK {item.version} {text}", flush=True)
        cube.refresh([id_])
        cube.search(f"{name} edit", k=1)
    cube.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
