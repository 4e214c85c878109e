"""The governance part of the cube surface: ``forget`` (``cubemem.ops.forget``;
docs/governance.md). ``BaseCube`` inherits it."""

from __future__ import annotations

from collections.abc import Sequence

import cubemem.cube.operations as op
from cubemem.cube.operations import FiltersLike
from cubemem.cube.runner import Runner, twin
from cubemem.model.governance import Forgotten


class GovernanceSurface(Runner):
    """What a cube erases for good."""

    def forget(
        self,
        ids: Sequence[str] | None = None,
        *,
        user: str | None = None,
        agent: str | None = None,
        session: str | None = None,
        filters: FiltersLike = None,
    ) -> Forgotten:
        """Erase memories for good: these ``ids``, or every memory of a ``user``, ``agent`` or
        ``session`` (together: all of them), or those ``filters`` match — whatever their
        status — with every version, vector and index entry, and what was derived from them
        (facts extracted only from them, summaries citing them; a fact other memories also
        support loses only the citations). Needs the admin grant on a shared cube, where it
        is audited by id and count. Give at least one selector; ``forget()`` alone is
        refused rather than erasing the cube."""
        return self._do(
            op.Forget(ids=ids, user=user, agent=agent, session=session, filters=filters)
        )

    aforget = twin(forget)
