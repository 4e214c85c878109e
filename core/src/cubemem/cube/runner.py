"""How a cube surface is written once: ``Runner`` (``run`` / ``arun``), ``twin`` (the async
twin of a method that builds an operation) and ``threaded`` (the async twin of anything else).

A method of ``BaseCube`` builds its operation's value and hands it to ``_do``, which runs it.
Its twin calls the same method with building switched on (a context variable): ``_do`` then
hands the value back instead of running it, and the twin awaits ``arun`` with it. So a
method's parameters, defaults, validation and docstring exist once, and the twin cannot drift.
"""

from __future__ import annotations

import asyncio
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any, Concatenate, ParamSpec, TypeVar

import cubemem.cube.operations as op

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound="Runner")


_BUILDING: ContextVar[bool] = ContextVar("cubemem_building", default=False)


class _Built(Exception):
    """How a twin gets the operation its sync method builds, without running it."""

    def __init__(self, built: op.Operation[Any]) -> None:
        super().__init__(type(built).__name__)
        self.op = built


def twin(
    method: Callable[Concatenate[C, P], R],
) -> Callable[Concatenate[C, P], Coroutine[Any, Any, R]]:
    """The async twin of a ``BaseCube`` method: same parameters, same validation, same
    operation, run by ``arun``."""

    @functools.wraps(method)
    async def run_async(self: C, /, *args: P.args, **kwargs: P.kwargs) -> R:
        token = _BUILDING.set(True)
        try:
            method(self, *args, **kwargs)
        except _Built as built:
            operation = built.op
        else:  # pragma: no cover - every twinned method ends in ``_do``
            raise TypeError(f"{method.__name__} built no operation")
        finally:
            _BUILDING.reset(token)
        return await self.arun(operation)

    run_async.__doc__ = f"Async twin of ``{method.__name__}``."
    return run_async


def threaded(fn: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """The async twin of a function that is not an operation (folder lifecycle, maintenance):
    the same signature, run in a worker thread."""

    @functools.wraps(fn)
    async def run_async(*args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(fn, *args, **kwargs)

    run_async.__doc__ = f"Async twin of ``{fn.__name__}``."
    return run_async


class Runner(ABC):
    """Something that runs operations: ``run`` (and ``arun``, off the event loop)."""

    @abstractmethod
    def run(self, operation: op.Operation[R]) -> R:
        """Run one operation (``cubemem.cube.operations``) and return its result."""

    async def arun(self, operation: op.Operation[R]) -> R:
        """Run one operation off the event loop."""
        return await asyncio.to_thread(self.run, operation)

    def _do(self, operation: op.Operation[R]) -> R:
        if _BUILDING.get():
            raise _Built(operation)
        return self.run(operation)
