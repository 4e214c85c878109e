"""Rows in the cube folder's SQLite, vectors in a Chroma server (``chroma run``).

The embedded engine with ``chromadb.HttpClient`` in place of the in-process
``PersistentClient``: a server serves many processes, so every process indexes its own writes
(no index lock, no followers) and the index files are the server's to keep. The rows stay the
truth — each keeps its vector — and opening a cube reconciles the server's collection with
them, as the embedded engine does with its folder.

URL: ``chroma+http://host:port`` (``chroma+https://`` for TLS); each cube is the collection
``cubemem-<cube id>``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from cubemem.embed import Embedder
from cubemem.errors import BackendUnavailableError, InvalidInputError
from cubemem.store.chroma_files import ChromaIndex
from cubemem.store.embedded import EmbeddedStore

log = logging.getLogger(__name__)


def parse_url(url: str) -> tuple[str, int, bool]:
    """(host, port, ssl) of a ``chroma+http(s)://host:port`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("chroma+http", "chroma+https") or not parts.hostname:
        raise InvalidInputError(
            f"a Chroma server URL is chroma+http://host:port (or chroma+https://), got {url!r}"
        )
    ssl = parts.scheme == "chroma+https"
    return parts.hostname, parts.port or (443 if ssl else 8000), ssl


class ServerIndex(ChromaIndex):
    """A cube's collection on a Chroma server: every process holds it (no lock file)."""

    def __init__(
        self, path: Path, embedder: Embedder, server: tuple[str, int, bool], name: str
    ) -> None:
        super().__init__(path, embedder)
        self._server = server
        self._name = name

    def try_own(self) -> bool:
        if self.collection is not None:
            return True
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        from cubemem.store.chroma_embedding import CubememEmbeddingFunction

        host, port, ssl = self._server
        try:
            self.client = chromadb.HttpClient(
                host=host, port=port, ssl=ssl, settings=ChromaSettings(anonymized_telemetry=False)
            )
            self.collection = self.client.get_or_create_collection(
                self._name,
                # chroma types the function for text and images; ours embeds text only
                embedding_function=CubememEmbeddingFunction(self._embedder),
                configuration={"hnsw": {"space": "ip"}},
            )
            self._max_batch = max(1, self.client.get_max_batch_size())
        except Exception as exc:  # connection refused, timeouts, server errors
            self.client = self.collection = None
            raise BackendUnavailableError(
                f"cannot reach the Chroma server at {host}:{port} ({exc}); start it "
                "(`chroma run --host HOST --port PORT --path DIR`) or check CUBEMEM_STORE_URL"
            ) from exc
        return True

    def close(self) -> None:
        """The server keeps the index."""
        self.client = self.collection = None

    def drop(self) -> None:
        if self.client is not None:
            self.client.delete_collection(self._name)
            self.collection = None


class ChromaServerStore(EmbeddedStore):
    """``EmbeddedStore`` whose vector index is a collection on a Chroma server."""

    def __init__(
        self,
        path: Path,
        embedder: Embedder,
        url: str,
        cube_id: str,
        *,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self._server = parse_url(url)
        self._collection_name = f"cubemem-{cube_id}"
        try:
            super().__init__(path, embedder, busy_timeout_s=busy_timeout_s)
        except BaseException:
            if getattr(self, "_db", None) is not None:
                self._db.close()
            raise

    def _open_index(self, embedder: Embedder) -> ChromaIndex:
        return ServerIndex(self._path, embedder, self._server, self._collection_name)

    @property
    def remote_index(self) -> bool:
        return True

    def compact_vectors(self) -> None:
        """A Chroma server compacts its own files; its collection is shared by every process
        and is not rebuilt from here (docs/governance.md). The rows' file is vacuumed."""
        self.vacuum_rows()

    def drop_index(self) -> None:
        """Delete this cube's collection on the server (the rows keep every vector)."""
        assert isinstance(self._index, ServerIndex)
        self._index.drop()
