"""Activation memory: memories as KV caches injected into local Hugging Face causal LMs.

- ``build_block`` / ``KVBlock``: a text's keys and values plus the model's fingerprint;
  ``save``/``load`` as safetensors; injected by borrowing its spare tail (no copy)
- ``compose``: several blocks into one (naive, rotated, sequential) and ``distance`` to a full
  prefill
- ``generate_with_memory`` / ``stream_with_memory``: generation from the cached prefix
- ``BlockPool``: a byte-budgeted LRU on CPU and GPU
- ``ActivationMemory``: a cube's hot memories promoted to a block, rebuilt only on change
- ``ParametricMemory``: stable memories trained into a LoRA adapter (peft), stored in the cube,
  loaded at generation time; ``TierPolicy`` moves memories between the three kinds
"""

from cubemem_activation.block import Fingerprint, KVBlock, build_block, fingerprint
from cubemem_activation.compose import STRATEGIES, compose, distance, shift_keys
from cubemem_activation.generate import generate_with_memory, prompt_ids, stream_with_memory
from cubemem_activation.parametric import (
    Adapter,
    LoraSettings,
    MigrationReport,
    ParametricMemory,
    TierPolicy,
    training_examples,
)
from cubemem_activation.pool import BlockPool
from cubemem_activation.promote import ActivationMemory

__all__ = [
    "STRATEGIES",
    "ActivationMemory",
    "Adapter",
    "BlockPool",
    "Fingerprint",
    "KVBlock",
    "LoraSettings",
    "MigrationReport",
    "ParametricMemory",
    "TierPolicy",
    "build_block",
    "compose",
    "distance",
    "fingerprint",
    "generate_with_memory",
    "prompt_ids",
    "shift_keys",
    "stream_with_memory",
    "training_examples",
]
