"""Create a cube, store a conversation and a fact, and search them. Offline.

uv run python examples/quickstart.py [FOLDER]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cubemem import MemCube


def main(folder: Path) -> None:
    cube = MemCube.create(folder / "memory")
    cube.add_messages(
        [
            {"speaker": "Ana", "text": "I adopted a grey tabby called Miso", "id": "m1"},
            {"speaker": "Ben", "text": "Lovely! What does she eat?", "id": "m2"},
            {"speaker": "Ana", "text": "Tuna, and far too much of it", "id": "m3"},
        ],
        session="s1",
        timestamp="2024-03-02T19:30:00",
    )
    cube.add("Ana is allergic to peanuts", scope={"user": "ana"}, tags=["health"])
    for question in ("what is Ana allergic to?", "what is the cat called?"):
        print(question)
        for hit in cube.search(question, k=2):
            print(f"  {hit.score:.4f}  {hit.content}  {hit.provenance.source_ids}")
    cube.close()


if __name__ == "__main__":  # a folder to keep the cube in, else a temporary one
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(sys.argv[1] if len(sys.argv) > 1 else tmp)
        main(folder)
