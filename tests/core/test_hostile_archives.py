"""Archives as an attacker or an unlucky disk would hand them over: every fault is a typed
error, no partial cube is left, nothing outside the target is touched, and the archive never
chooses which model is loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cubemem import (
    IncompatibleCubeError,
    InvalidArchiveError,
    MemCube,
    Settings,
)
from cubemem import embed as embed_module


@pytest.fixture
def archive(tmp_path, embedder) -> Path:
    with MemCube.create(tmp_path / "source", embedder=embedder) as cube:
        ids = [i.id for i in cube.add([f"memory number {i}" for i in range(20)])]
        cube.update(ids[0], "memory number 0, revised")
        cube.put(("memories", "ana"), "diet", "Ana is vegetarian", value={"diet": "vegetarian"})
        return cube.export(tmp_path / "good.zip")


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rewrite(path: Path, target: Path, **changes: bytes) -> Path:
    parts = members(path) | {k.replace("_", "."): v for k, v in changes.items()}
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return target


def records(raw: bytes) -> list[dict]:
    return [json.loads(line) for line in raw.decode().splitlines() if line]


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def assert_nothing_left(folder: Path, allowed: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} <= allowed, sorted(p.name for p in folder.iterdir())


def test_the_good_archive_imports(archive, tmp_path, embedder):
    with MemCube.import_(archive, tmp_path / "copy", embedder=embedder) as copy:
        assert copy.count() == 21


@pytest.mark.parametrize(
    "damage",
    [
        ("id", ""),
        ("content", ""),
        ("content", "x" * (2 << 20)),
        ("content", "nul \x00 inside"),
        ("namespace", ["memories\x1fbob", "diet"]),
        ("metadata", {"score": float("nan")}),
        ("metadata", {"deep": json.loads("[" * 40 + "]" * 40)}),
        ("tags", [f"t{i}" for i in range(300)]),
        ("cube", "some-other-cube"),
        ("version", 0),
    ],
    ids=lambda d: d[0] if isinstance(d, tuple) else str(d),
)
def test_a_bad_record_imports_nothing(archive, tmp_path, embedder, damage):
    field, value = damage
    rows = records(members(archive)["memories.jsonl"])
    rows[-2][field] = value  # deep in the file, after many good records
    raw = "".join(json.dumps(r, allow_nan=True) + "\n" for r in rows).encode()
    bad = rewrite(archive, tmp_path / "bad.zip", memories_jsonl=raw)
    before = {p.name for p in tmp_path.iterdir()}
    with pytest.raises(InvalidArchiveError):
        MemCube.import_(bad, tmp_path / "copy", embedder=embedder)
    assert_nothing_left(tmp_path, before)  # no cube, no temporary folder
    # the same target is free for a good import afterwards
    with MemCube.import_(archive, tmp_path / "copy", embedder=embedder) as copy:
        assert copy.count() == 21


def test_a_zip_bomb_stops_at_the_cap(archive, tmp_path, embedder):
    padding = b" " * (64 << 20)  # 64 MiB of blanks: a few hundred KiB compressed
    bomb = rewrite(archive, tmp_path / "bomb.zip", versions_jsonl=padding)
    assert bomb.stat().st_size < (1 << 20)
    with pytest.raises(InvalidArchiveError, match="inflates past the archive limit"):
        MemCube.import_(
            bomb,
            tmp_path / "copy",
            embedder=embedder,
            settings=Settings(max_archive_bytes=8 << 20),
        )
    assert not (tmp_path / "copy").exists()


def test_a_corrupt_deflate_stream_and_stray_members(archive, tmp_path, embedder):
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("memories.jsonl")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 10
    for i in range(start, start + 40):
        data[i] ^= 0xFF
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bytes(data))
    with pytest.raises(InvalidArchiveError):
        MemCube.import_(broken, tmp_path / "copy", embedder=embedder)
    extra = rewrite(archive, tmp_path / "extra.zip", **{"evil_sh": b"rm -rf /"})
    with pytest.raises(InvalidArchiveError, match="members"):
        MemCube.import_(extra, tmp_path / "copy", embedder=embedder)
    assert not (tmp_path / "copy").exists()


def test_the_archive_never_chooses_the_model(archive, tmp_path, monkeypatch):
    manifest = json.loads(members(archive)["manifest.json"])
    manifest["embedder"] = "attacker/evil-model"
    evil = rewrite(archive, tmp_path / "evil.zip", manifest_json=json.dumps(manifest).encode())

    def no_loading(source, device):  # the test fails if any model is requested
        raise AssertionError(f"a model was requested: {source}")

    monkeypatch.setattr(embed_module, "_load_sentence_transformer", no_loading)
    with pytest.raises(IncompatibleCubeError, match="never chooses"):
        MemCube.import_(evil, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_export_never_follows_a_planted_link(archive, tmp_path, embedder):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "out.zip"
    for planted in (target.with_name("out.zip.tmp"), target.with_name(".out.zip.tmp")):
        planted.symlink_to(victim)
    with MemCube.open(tmp_path / "source", embedder=embedder) as cube:
        cube.export(target)
    assert victim.read_text() == "precious"
    assert zipfile.is_zipfile(target)
    assert_nothing_left(
        tmp_path, {"source", "good.zip", "victim.txt", "out.zip", "out.zip.tmp", ".out.zip.tmp"}
    )


def test_one_huge_line_is_refused_without_holding_it(archive, tmp_path):
    """A member that inflates within the cap to one 256 MiB line: refused as soon as the line
    outgrows any record the cube's limits allow, and the reader's peak memory stays bounded
    (measured in a child process, so nothing else in the suite counts)."""
    line = b'{"content": "' + b"x" * (256 << 20)
    huge = rewrite(archive, tmp_path / "huge.zip", memories_jsonl=line)
    said, grew = _read_in_a_child(huge)
    assert "refused" in said and "line 1 is over" in said, said
    assert grew < 150 * 1024, f"reading grew the process by {grew} KiB"


def _read_in_a_child(path: Path) -> tuple[str, int]:
    """``archive.read`` of ``path`` in a fresh process (default limits): what it printed and
    how much its peak memory grew, KiB."""
    child = (
        "import resource, sys\n"
        "from cubemem import InvalidArchiveError, archive\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    archive.read(sys.argv[1], max_bytes={1 << 30}, max_content_bytes={1 << 20})\n"
        "except InvalidArchiveError as exc:\n"
        "    print('refused', exc)\n"
        "print('grew_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child, str(path)], capture_output=True, text=True, timeout=300
    )
    return done.stdout + done.stderr, int(done.stdout.split("grew_kib")[1])


def test_a_manifest_bomb_is_refused_at_the_manifests_own_bound(archive, tmp_path):
    """A ``manifest.json`` that inflates to 256 MiB (well inside the 1 GiB archive cap) is
    refused once it passes the manifest's bound, without holding it."""
    manifest = json.loads(members(archive)["manifest.json"])
    padded = json.dumps(manifest)[:-1].encode() + b', "pad": "' + b" " * (256 << 20) + b'"}'
    bomb = rewrite(archive, tmp_path / "manifest_bomb.zip", manifest_json=padded)
    assert bomb.stat().st_size < (2 << 20)
    said, grew = _read_in_a_child(bomb)
    assert "refused" in said and "manifest.json inflates past" in said, said
    assert grew < 100 * 1024, f"reading grew the process by {grew} KiB"


@pytest.mark.parametrize("filler", [b"\n", b" \n", b"{}\n"])
def test_a_member_of_blank_or_short_lines_is_refused_at_its_first_line(archive, tmp_path, filler):
    """A ``memories.jsonl`` of 64 MiB of empty (or too short) lines: refused at the first such
    line, not read line by line to its end."""
    good = members(archive)["memories.jsonl"]
    bomb = rewrite(
        archive, tmp_path / "lines.zip", memories_jsonl=filler * ((64 << 20) // len(filler)) + good
    )
    said, _ = _read_in_a_child(bomb)
    assert "refused" in said and "memories.jsonl line 1 is" in said, said
    with_blank = rewrite(archive, tmp_path / "one_blank.zip", versions_jsonl=b"\n")
    with pytest.raises(InvalidArchiveError, match=r"versions\.jsonl line 1 is blank"):
        MemCube.import_(with_blank, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
