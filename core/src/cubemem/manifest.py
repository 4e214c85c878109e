"""A cube's identity on disk: ``cube.json`` with format version, embedder name and dimension."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cubemem.errors import IncompatibleCubeError, NotACubeError
from cubemem.model import new_id, utcnow
from cubemem.model.governance import RedactionPolicy, RetentionRule
from cubemem.settings import model_name

FORMAT_VERSION = 1
MANIFEST_NAME = "cube.json"


class Manifest(BaseModel):
    """What a cube is: who made it, in which format, and which vector space it lives in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int = FORMAT_VERSION
    id: str = Field(default_factory=new_id)
    name: str
    embedder: str
    dimension: int = Field(gt=0)
    created_at: datetime = Field(default_factory=utcnow)
    owner: str | None = None
    store: Literal["sqlite", "postgresql"] = "sqlite"
    """The engine that holds the rows (the URL, which may carry a password, is configuration:
    ``Settings.store_url``)."""
    redaction: RedactionPolicy | None = None
    """Personal data redacted before anything is stored (``cubemem.redact``); None: none."""
    retention: list[RetentionRule] = Field(default_factory=list)
    """How long memories are kept (``cubemem.ops.retention``, run by the lifecycle sweep)."""

    def check_embedder(self, name: str, dimension: int) -> None:
        """Refuse an embedder other than the one this cube's vectors were made with."""
        if (model_name(name), dimension) != (model_name(self.embedder), self.dimension):
            raise IncompatibleCubeError(
                f"cube {self.name!r} was built with embedder {self.embedder!r} "
                f"(dimension {self.dimension}), not {name!r} (dimension {dimension}); open it "
                "with the same embedder, or export it and import into a cube re-indexed by yours"
            )


def read_manifest(path: Path) -> Manifest:
    """Read and check ``path/cube.json``; raise if it is missing, unreadable or too new."""
    file = Path(path) / MANIFEST_NAME
    if not file.is_file():
        raise NotACubeError(
            f"{path} is not a cube (no {MANIFEST_NAME}); create one with MemCube.create "
            "or `cubemem init`"
        )
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IncompatibleCubeError(f"{file} is unreadable: {exc}") from exc
    return parse_manifest(raw, where=str(file))


def parse_manifest(raw: object, *, where: str) -> Manifest:
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise IncompatibleCubeError(
            f"{where} has format version {version}, newer than this cubemem understands "
            f"({FORMAT_VERSION}); upgrade cubemem to open it"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise IncompatibleCubeError(f"{where} is not a valid cube manifest: {exc}") from None


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write atomically: a crash leaves the old manifest or the new one, never half of one."""
    file = Path(path) / MANIFEST_NAME
    tmp = file.with_suffix(".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, file)
