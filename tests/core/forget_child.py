"""A child process for the forget tests: forgets every memory of user ``ana``, to be killed
with SIGKILL in the middle (``test_forget.test_kill_9_in_the_middle_of_a_forget_...``).

    python forget_child.py CUBE
"""

from __future__ import annotations

import hashlib
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from cubemem import MemCube


def hashed(texts: list[str]) -> np.ndarray:
    """A cheap deterministic embedder (thousands of memories in a second), the same in the
    test and here."""
    seeds = [
        int.from_bytes(hashlib.blake2b(t.encode(), digest_size=4).digest(), "big") for t in texts
    ]
    return np.stack([np.random.default_rng(s).standard_normal(16) for s in seeds])


def main() -> None:
    from forget_child import hashed  # by the module's name, as the test made the cube with it

    with MemCube.open(sys.argv[1], embedder=hashed) as cube:
        print("READY", flush=True)
        cube.forget(user="ana")
        print("DONE", flush=True)


if __name__ == "__main__":
    main()
