"""MemoryOS: many cubes under one root, one scheduler for all of them, search across cubes.

The root folder holds ``memoryos.json`` (the OS's id), one folder per cube (each a complete
cube that ``MemCube.open`` can also open alone) and, with the default SQLite queue, the one
``queue.sqlite3`` every cube's background work goes through. Tasks name their cube, so one
set of workers serves them all. ``access.sqlite3`` holds the agents, grants and audit log
(``cubemem.access``); ``as_agent`` / ``authenticate`` give the OS as one agent may use it
(``cubemem.shared``). Used directly, the MemoryOS is its owner's and checks nothing.

On PostgreSQL (``Settings.store_url``) the database is the memory: it holds the OS's id, the
cubes' manifests (``store/catalog.py``) and the access tables, and the root folder is this
machine's cache of them — a root on another machine, opened on the same database, is the same
MemoryOS with the same cubes, agents and grants.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cubemem.access import AccessControl
from cubemem.cube import MemCube, default_embedder
from cubemem.cube.across import CubeSet
from cubemem.cube.runner import threaded
from cubemem.embed import Embedder, EmbedderLike, as_embedder
from cubemem.errors import (
    CubememError,
    IncompatibleCubeError,
    InvalidInputError,
    NotFoundError,
)
from cubemem.manifest import MANIFEST_NAME, parse_manifest, read_manifest, write_manifest
from cubemem.model import new_id, utcnow
from cubemem.ops.context import Context
from cubemem.scheduler import Scheduler, open_queue
from cubemem.settings import Settings
from cubemem.shared import AgentOS
from cubemem.store import engine_of

if TYPE_CHECKING:
    from cubemem.store.catalog import PostgresCatalog

log = logging.getLogger(__name__)

OS_MANIFEST = "memoryos.json"
_CUBE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class OSManifest(BaseModel):
    """What a MemoryOS root is: its id (the queue is keyed by it) and when it was made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=new_id)
    created_at: str = Field(default_factory=lambda: utcnow().isoformat())


class MemoryOS(CubeSet):
    """Cubes under one root with one scheduler; ``search`` across a chosen set of them.

    ``MemoryOS("./memory")`` opens the root (making it if needed); ``create_cube(name)`` and
    ``open_cube(name)`` return ``MemCube`` objects that share the OS's scheduler and stay open
    until ``close``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        embedder: EmbedderLike | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._root = Path(root)
        if self._root.exists() and not self._root.is_dir():
            raise InvalidInputError(f"{self._root} is a file; a MemoryOS root is a folder")
        if (self._root / MANIFEST_NAME).exists():
            raise InvalidInputError(
                f"{self._root} is a cube, not a MemoryOS root; open it with MemCube.open, or "
                "give the MemoryOS the folder above it"
            )
        self._root.mkdir(parents=True, exist_ok=True)
        self._settings = settings or Settings()
        self._catalog: PostgresCatalog | None = None
        if engine_of(self._settings.store_url) == "postgresql":
            from cubemem.store.catalog import PostgresCatalog

            self._catalog = PostgresCatalog(self._settings.store_url)
        self._manifest = _read_or_make_manifest(self._root, self._catalog)
        if self._catalog is not None:
            self._adopt_local_cubes(self._catalog)
        self._embedder = None if embedder is None else as_embedder(embedder)
        self._embedders: dict[str, Embedder] = {}
        self._cubes: dict[str, MemCube] = {}
        self._lock = threading.RLock()
        self._access: AccessControl | None = None
        queue = open_queue(
            self._settings.queue_url,
            self._root,
            f"os:{self._manifest.id}",
            sync=self._settings.queue_sync,
            busy_timeout_s=self._settings.busy_timeout_s,
        )
        self.scheduler = Scheduler(_Cubes(self), queue, self._settings)
        stats = queue.stats()
        if stats.ready or stats.in_flight:  # work a crash left behind
            self.scheduler.start()

    @property
    def root(self) -> Path:
        return self._root

    @property
    def id(self) -> str:
        return self._manifest.id

    @property
    def settings(self) -> Settings:
        return self._settings

    def __repr__(self) -> str:
        return f"MemoryOS(root={str(self._root)!r})"

    # -- agents ---------------------------------------------------------------------------
    @property
    def access(self) -> AccessControl:
        """Agents, grants, trust thresholds and the audit log (``cubemem.access``)."""
        with self._lock:
            if self._access is None:
                self._access = AccessControl(
                    self._root,
                    busy_timeout_s=self._settings.busy_timeout_s,
                    store_url=self._settings.store_url,
                    cubes=self.list_cubes,
                )
            return self._access

    def as_agent(self, agent: str) -> AgentOS:
        """The OS as the agent ``agent`` (id or name) may use it: every call checked against
        its grants, every write stamped with it (``cubemem.shared``)."""

        return AgentOS(self, self.access.agent(agent))

    def authenticate(self, key: str) -> AgentOS | None:
        """The OS as the agent holding API key ``key``; None for an unknown or disabled key."""

        agent = self.access.authenticate(key)
        return None if agent is None else AgentOS(self, agent, key)

    def __enter__(self) -> MemoryOS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- cubes ----------------------------------------------------------------------------
    def create_cube(self, name: str, *, owner: str | None = None) -> MemCube:
        """Make a new, empty cube ``name`` under the root."""
        path = self._root / _check_name(name)
        exists = InvalidInputError(
            f"cube {name!r} already exists in {self._where}; open it with open_cube"
        )
        with self._lock:
            if path.exists() or (self._catalog and self._catalog.manifest(name) is not None):
                raise exists
            cube = MemCube.create(
                path,
                name=name,
                owner=owner,
                embedder=self._embedder_for(None),
                settings=self._settings,
                scheduler=self.scheduler,
            )
            if self._catalog and not self._catalog.register(
                name, cube.manifest.model_dump(mode="json")
            ):  # another machine made a cube of that name in between
                cube.close()
                shutil.rmtree(path, ignore_errors=True)
                raise exists
            cube.maintenance.context.audit = self._auditor(name)
            self._cubes[name] = cube
            return cube

    def open_cube(self, name: str, *, create: bool = False) -> MemCube:
        """The cube ``name`` (opened once, then the same object until ``close``); with
        ``create=True`` it is made first when the root has none of that name."""
        path = self._root / _check_name(name)
        with self._lock:
            if name in self._cubes:
                return self._cubes[name]
            if self._catalog is not None:
                registered = self._catalog.manifest(name)
                if registered is None and create:
                    return self.create_cube(name)
                if registered is not None:
                    self._cache_manifest(path, registered)
            elif create and not path.exists():
                return self.create_cube(name)
            if not (path / MANIFEST_NAME).is_file():
                raise NotFoundError(
                    f"no cube {name!r} in {self._where}; cubes here: {self.list_cubes()}"
                )
            manifest = read_manifest(path)
            cube = MemCube.open(
                path,
                embedder=self._embedder_for(manifest.embedder, manifest.dimension),
                settings=self._settings,
                scheduler=self.scheduler,
            )
            cube.maintenance.context.audit = self._auditor(name)
            self._cubes[name] = cube
            return cube

    def _auditor(self, name: str) -> Callable[[str, dict[str, Any]], None]:
        """What cube ``name`` does by itself (a forget, a retention expiry), in the audit log."""

        def record(action: str, detail: dict[str, Any]) -> None:
            self.access.record(None, action, name, detail=detail)

        return record

    def warm(self, cubes: Sequence[str] | None = None) -> dict[str, Any]:
        """Open ``cubes`` (default: every cube of the root), build their search indexes and
        load their embedders, so the first request is as fast as the rest (``cubemem serve``
        and ``cubemem mcp`` call it before they take requests). Returns the cubes warmed,
        those that could not be (``cold``: why, e.g. built with an embedder not passed) and
        the seconds it took."""
        started = time.perf_counter()
        names = list(self.list_cubes() if cubes is None else cubes)
        cold: dict[str, str] = {}
        for name in names:
            try:
                self.open_cube(name).maintenance.warm()
            except CubememError as exc:  # e.g. built with an embedder not passed, or damaged:
                cold[name] = str(exc)  # the server still starts; that cube's requests say why
        if not names:  # nothing to index yet: the embedder the first cube will use
            self._embedder_for(None).embed_query("warm up")
        warmed = [n for n in names if n not in cold]
        return {"cubes": warmed, "cold": cold, "seconds": round(time.perf_counter() - started, 3)}

    def list_cubes(self) -> list[str]:
        """The names of the cubes under the root (on PostgreSQL: in the database), sorted."""
        if self._catalog is not None:
            return self._catalog.names()
        return sorted(
            p.name for p in self._root.iterdir() if p.is_dir() and (p / MANIFEST_NAME).is_file()
        )

    @property
    def _where(self) -> str:
        return "the database" if self._catalog is not None else str(self._root)

    def _cache_manifest(self, path: Path, registered: dict[str, Any]) -> None:
        """Make ``path`` this machine's folder of the registered cube, or check that it is."""
        manifest = parse_manifest(registered, where=f"the catalog's cube {path.name!r}")
        if (path / MANIFEST_NAME).is_file():
            local = read_manifest(path)
            if local.id != manifest.id:
                raise IncompatibleCubeError(
                    f"{path} holds cube id {local.id}, but the database's cube {path.name!r} is "
                    f"{manifest.id}; this root was made for another database: move the folder "
                    "away (it is only a cache of the manifest) and open the cube again"
                )
            return
        path.mkdir(parents=True, exist_ok=True)
        write_manifest(path, manifest)

    def _adopt_local_cubes(self, catalog: PostgresCatalog) -> None:
        """Register this root's PostgreSQL cubes that the catalog does not know (roots made
        before the catalog existed)."""
        known = set(catalog.names())
        for p in self._root.iterdir():
            if p.name in known or not (p / MANIFEST_NAME).is_file():
                continue
            try:
                manifest = read_manifest(p)
            except IncompatibleCubeError:
                continue
            if manifest.store == "postgresql":
                catalog.register(p.name, manifest.model_dump(mode="json"))

    def close(self) -> None:
        """Stop the workers (queued tasks stay durable) and close every open cube."""
        self.scheduler.stop()
        with self._lock:
            for cube in self._cubes.values():
                cube.close()
            self._cubes.clear()
            if self._access is not None:
                self._access.close()
                self._access = None
        self.scheduler.queue.close()

    def _embedder_for(self, name: str | None, dimension: int | None = None) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        name = name or self._settings.embedder
        if name not in self._embedders:
            self._embedders[name] = default_embedder(self._settings, name, dimension)
        return self._embedders[name]

    # -- async twins ----------------------------------------------------------------------
    acreate_cube = threaded(create_cube)
    aopen_cube = threaded(open_cube)
    alist_cubes = threaded(list_cubes)
    awarm = threaded(warm)
    aclose = threaded(close)


class _Cubes:
    """The scheduler's view of a MemoryOS (``cubemem.scheduler.Cubes``): a task's cube is
    opened on first use, so a worker can serve cubes nobody opened in its process."""

    def __init__(self, os_: MemoryOS) -> None:
        self._os = os_

    def context(self, cube_id: str | None) -> Context:
        os_ = self._os
        with os_._lock:
            for cube in os_._cubes.values():
                if cube.id == cube_id:
                    return cube.maintenance.context
            if os_._catalog is not None and cube_id is not None:
                name = os_._catalog.by_id(cube_id)
                if name is not None:
                    return os_.open_cube(name).maintenance.context
            for name in os_.list_cubes():
                if name not in os_._cubes and read_manifest(os_.root / name).id == cube_id:
                    return os_.open_cube(name).maintenance.context
        raise NotFoundError(f"no cube with id {cube_id!r} in {os_._where}")

    def contexts(self) -> list[Context]:
        with self._os._lock:
            return [cube.maintenance.context for cube in self._os._cubes.values()]


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _CUBE_NAME.fullmatch(name):
        raise InvalidInputError(
            f"cube name {name!r} must be 1-128 letters, digits, '.', '_' or '-', starting with "
            "a letter or digit"
        )
    return name


def _read_or_make_manifest(root: Path, catalog: PostgresCatalog | None = None) -> OSManifest:
    """The root's ``memoryos.json``, made if missing. On PostgreSQL the database's identity
    wins: a new root takes it, and a root made for another database is refused."""
    file = root / OS_MANIFEST
    claimed = None
    if catalog is not None:
        local = _parse_os_manifest(file) if file.exists() else OSManifest()
        claimed = OSManifest.model_validate(catalog.claim_os(local.model_dump()))
        if file.exists() and claimed.id != local.id:
            raise IncompatibleCubeError(
                f"{root} is MemoryOS {local.id}, but the database holds MemoryOS {claimed.id}; "
                "this root was made for another database: use a new --data folder here (on "
                "PostgreSQL the folder is only a cache) or the database it was made with"
            )
    if not file.exists():  # published with a link: of two processes starting at once, one wins
        tmp = root / f".{OS_MANIFEST}.{new_id()}"
        tmp.write_text((claimed or OSManifest()).model_dump_json(indent=2), encoding="utf-8")
        try:
            os.link(tmp, file)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return _parse_os_manifest(file)


def _parse_os_manifest(file: Path) -> OSManifest:
    try:
        return OSManifest.model_validate(json.loads(file.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
        raise IncompatibleCubeError(f"{file} is not a MemoryOS manifest: {exc}") from exc
