"""Issue 43, item 8: an idempotency key used for a queued (202) write and then for other
content is a conflict, whichever call waits; both acknowledged texts never fight over one id."""

from __future__ import annotations

import pytest

from cubemem import ConflictError, MemCube, Settings


def test_other_content_under_a_key_whose_write_is_queued_is_a_conflict(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=embedder, settings=Settings(workers=0)) as cube:
        first = cube.add("Ana moved to Porto", idempotency_key="k1", wait=False)
        with pytest.raises(ConflictError, match="idempotency_key"):
            cube.add("Ana moved to Lisbon", idempotency_key="k1", wait=True)
        again = cube.add("Ana moved to Porto", idempotency_key="k1", wait=False)
        assert again == first  # the same call retried: the same id, nothing new queued
        cube.scheduler.workers = 1
        assert cube.scheduler.start().wait(timeout=120)
        assert cube.get(first).content == "Ana moved to Porto"
        with pytest.raises(ConflictError):
            cube.add("Ana moved to Lisbon", idempotency_key="k1", wait=False)
