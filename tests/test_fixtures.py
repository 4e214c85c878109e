"""The suite's own servers survive another pytest run on the same machine.

Each pytest session makes its base temp folder's parent (``/tmp/pytest-of-USER``) private
again at start (``chmod go-rwx``), while pgserver, run as root, starts PostgreSQL as the user
``pgserver`` and opens the folders above its data folder to it: a PostgreSQL whose data folder
lay under pytest's temp root lost its own folder when a second session started, and went away
mid-suite ("connection refused" on its socket). So the fixtures' servers keep their data in
folders of their own (``server_folder`` in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def test_the_postgresql_fixture_lives_outside_pytests_temp_root(postgres_url, tmp_path_factory):
    pytest_root = tmp_path_factory.getbasetemp().resolve().parent
    query = parse_qs(urlsplit(postgres_url).query)
    socket_dir = Path(query["host"][0]).resolve() if "host" in query else None
    assert socket_dir is not None, postgres_url
    assert not socket_dir.is_relative_to(pytest_root), (socket_dir, pytest_root)


def test_server_folders_are_outside_pytests_temp_root(server_folder, tmp_path_factory):
    pytest_root = tmp_path_factory.getbasetemp().resolve().parent
    assert not server_folder("probe").resolve().is_relative_to(pytest_root)
