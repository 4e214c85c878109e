"""Every public sync method has an async twin with the same parameters (names, kinds,
defaults, annotations) and a matching return annotation; this fails on any drift."""

from __future__ import annotations

import inspect

import pytest

from cubemem import MemCube, MemoryOS, RemoteCube, RemoteMemoryOS
from cubemem.cube.maintenance import Maintenance
from cubemem.shared import AgentCube, AgentOS

# Not I/O, so no twin: registering a callback returns at once; ``iter`` is a lazy generator
# (async code pages with ``alist``).
NO_TWIN = {"on_working_memory_change", "iter", "as_agent", "authenticate", "wait"}
"""Callbacks, generators, the views of an OS as one agent (one indexed SQLite row read), and
``wait`` (``await`` is a keyword: async code awaits ``arun(Wait(ids=...))``)."""


def _public_methods(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_")
        and callable(member)
        and not isinstance(inspect.getattr_static(cls, name), property)
    }


@pytest.mark.parametrize(
    "cls", [MemCube, MemoryOS, AgentCube, AgentOS, RemoteCube, RemoteMemoryOS, Maintenance]
)
def test_every_sync_method_has_an_async_twin_with_the_same_signature(cls):
    methods = _public_methods(cls)
    sync = {n: m for n, m in methods.items() if not inspect.iscoroutinefunction(m)}
    missing, drift = [], []
    for name, method in sorted(sync.items()):
        if name in NO_TWIN:
            continue
        twin = methods.get(f"a{name}")
        if twin is None or not inspect.iscoroutinefunction(twin):
            missing.append(name)
            continue
        ours, theirs = inspect.signature(method), inspect.signature(twin)
        if list(ours.parameters.values()) != list(theirs.parameters.values()):
            drift.append(f"{name}: {ours} != a{name}: {theirs}")
        elif ours.return_annotation != theirs.return_annotation:
            drift.append(
                f"{name} returns {ours.return_annotation}, a{name} {theirs.return_annotation}"
            )
    assert not missing, f"{cls.__name__} methods without an async twin: {missing}"
    assert not drift, "\n".join(drift)
    strays = [n for n, m in methods.items() if inspect.iscoroutinefunction(m) and n[1:] not in sync]
    assert not strays, f"async methods without a sync twin: {strays}"


async def test_the_async_twins_do_what_their_sync_twins_do(cube):
    item = await cube.aadd("Ana is allergic to peanuts", scope={"user": "ana"})
    queued = await cube.aadd(["Ana plays chess"], wait=False)
    assert isinstance(item.id, str) and isinstance(queued, list) and isinstance(queued[0], str)
    assert cube.scheduler.wait(queued, timeout=60)
    updated = await cube.aupdate(item.id, "Ana is allergic to peanuts and shellfish")
    assert (await cube.aget(item.id)).version == updated.version == 2
    hits = await cube.asearch("allergy", k=1, filters={"user": "ana"})
    assert hits[0].id == item.id
    assert [v.version for v in await cube.ahistory(item.id)] == [1, 2]
    assert await cube.acount() == 2
