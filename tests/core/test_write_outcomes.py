"""Write outcomes are truthful: a retried ``add`` with an idempotency key stores nothing twice,
and on a full disk a call either succeeds or raises a typed error having written nothing —
after space returns, everything acknowledged is there and nothing else."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from cubemem import ConflictError


def test_a_retried_add_with_a_key_stores_once(cube):
    first = cube.add(["Ana moved to Porto", "Ana adopted Miso"], idempotency_key="req-1")
    again = cube.add(["Ana moved to Porto", "Ana adopted Miso"], idempotency_key="req-1")
    assert [i.id for i in again] == [i.id for i in first]
    assert cube.count() == 2
    one = cube.add("Ben sails", idempotency_key="req-2")
    assert cube.add("Ben sails", idempotency_key="req-2").id == one.id
    cube.update(one.id, "Ben sails on Sundays")  # a later edit does not make a retry conflict
    assert cube.add("Ben sails", idempotency_key="req-2").content == "Ben sails on Sundays"
    with pytest.raises(ConflictError, match="other content"):
        cube.add("Ben rows", idempotency_key="req-2")
    assert cube.count() == 3


def test_a_retried_background_add_is_stored_once(cube):
    ids = cube.add(["queued fact one", "queued fact two"], wait=False, idempotency_key="bg-1")
    assert (
        cube.add(["queued fact one", "queued fact two"], wait=False, idempotency_key="bg-1") == ids
    )
    assert cube.scheduler.wait(ids, timeout=60)
    assert (
        cube.add(["queued fact one", "queued fact two"], wait=False, idempotency_key="bg-1") == ids
    )
    assert cube.count() == 2


FILL = textwrap.dedent(
    """
    import json, sys
    from cubemem import CubememError, MemCube
    from cubemem.bench.scale import RandomEmbedder

    cube = MemCube.create(sys.argv[1], embedder=RandomEmbedder())
    first = cube.add("the first memory")
    acked, failures = [first.id], []
    for i in range(400):
        try:
            acked.append(cube.add(f"memory {i} " + "filler words " * 4000).id)
        except CubememError as exc:
            failures.append(type(exc).__name__)
            if len(failures) >= 3:
                break
    try:
        cube.update(first.id, "an edit that needs room " * 4000)
        failures.append("update-succeeded")
    except CubememError as exc:
        failures.append("update:" + type(exc).__name__)
    from pathlib import Path
    folder = Path(sys.argv[1]).parent
    try:
        cube.export(folder / "full.zip")
        failures.append("export-succeeded")
    except CubememError as exc:
        failures.append("export:" + type(exc).__name__)
    leftovers = sorted(p.name for p in folder.iterdir() if p.name != "cube")
    print(json.dumps({"acked": acked, "failures": failures, "leftovers": leftovers}), flush=True)
    """
)
CHECK = textwrap.dedent(
    """
    import json, sys
    from cubemem import Filters, MemCube
    from cubemem.bench.scale import RandomEmbedder

    with MemCube.open(sys.argv[1], embedder=RandomEmbedder()) as cube:
        first = cube.list(limit=1)[0]
        print(json.dumps({
            "ids": [m.id for m in cube.iter(Filters.everything())],
            "first_version": cube.get(first.id).version,
            "indexed": cube.maintenance.store._index.collection.count(),
        }), flush=True)
    """
)


def _run_in_small_tmpfs(tmp_path, script: str) -> subprocess.CompletedProcess[str]:
    """Mount a 6 MiB tmpfs (as root, or in a user namespace), fill it, give it room, check."""
    mount = tmp_path / "disk"
    mount.mkdir()
    (tmp_path / "fill.py").write_text(FILL)
    (tmp_path / "check.py").write_text(CHECK)
    return subprocess.run(
        [*_mount_prefix(), "sh", "-c", script.format(py=sys.executable, d=mount, t=tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _mount_prefix() -> list[str]:
    import os

    if os.geteuid() == 0:
        return ["unshare", "-m"] if shutil.which("unshare") else []
    return ["unshare", "-rm"]


@pytest.mark.slow
def test_a_full_disk_loses_nothing_acknowledged_and_writes_nothing_refused(tmp_path):
    probe = subprocess.run(
        [*_mount_prefix(), "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {tmp_path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here (not root, no user namespaces): {probe.stderr.strip()}"
        )
    done = _run_in_small_tmpfs(
        tmp_path,
        "mount -t tmpfs -o size=6m tmpfs {d} && "
        "{py} {t}/fill.py {d}/cube > {t}/fill.json && "
        "mount -o remount,size=256m {d} && "
        "{py} {t}/check.py {d}/cube > {t}/check.json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    filled = json.loads((tmp_path / "fill.json").read_text())
    checked = json.loads((tmp_path / "check.json").read_text())
    assert filled["failures"], "the disk never filled up"
    assert set(filled["failures"]) <= {
        "BackendUnavailableError",
        "CubeBusyError",
        "update:BackendUnavailableError",
        "export:BackendUnavailableError",
    }, filled["failures"]
    assert filled["failures"][-2:] == [
        "update:BackendUnavailableError",
        "export:BackendUnavailableError",
    ]
    assert filled["leftovers"] == []  # no half-written archive or temporary file
    # everything acknowledged is there, and nothing whose call raised
    assert sorted(checked["ids"]) == sorted(filled["acked"])
    assert checked["first_version"] == 1  # the refused update wrote no version
    assert checked["indexed"] == len(filled["acked"])  # the index caught up on open
