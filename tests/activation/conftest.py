"""Tiny real causal LMs for the activation tests: a Llama built from a config (random weights,
fixed seed) and a byte-level BPE tokenizer trained here, with a chat template."""

from __future__ import annotations

import pytest
from tiny_lm import make_model, make_tokenizer
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


@pytest.fixture(scope="session")
def model(tokenizer) -> LlamaForCausalLM:
    return make_model(tokenizer)
