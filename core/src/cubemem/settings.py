"""The one settings object; every field can be set by a ``CUBEMEM_`` environment variable."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Defaults that work offline on one machine."""

    model_config = SettingsConfigDict(env_prefix="CUBEMEM_", extra="forbid")

    embedder: str = Field(DEFAULT_EMBEDDER, description="Sentence-transformers model name or path.")
    max_content_bytes: int = Field(1 << 20, gt=0, description="Largest memory text, UTF-8 bytes.")
    embed_batch_size: int = Field(64, gt=0, description="Texts embedded per model call.")
    device: str | None = Field(None, description="Torch device for the embedder (default: auto).")
