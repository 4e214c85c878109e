"""Every script in examples/ runs and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
        timeout=300,
    )


def output_of(name: str, folder: Path) -> str:
    """The example's output, after it ran in ``folder`` and exited 0."""
    result = run_example(name, str(folder))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart(tmp_path):
    lines = output_of("quickstart.py", tmp_path).splitlines()
    assert lines[0] == "what is Ana allergic to?"
    assert "Ana is allergic to peanuts" in lines[1]
    assert (tmp_path / "memory" / "cube.json").is_file()


@pytest.mark.parametrize(
    ("script", "said", "context", "fact"),
    [
        (
            "langchain_agent.py",
            "thread 2: Since you're allergic to peanuts",
            "system prompt the model received in thread 2:\n",
            "- Ana is allergic to peanuts",
        ),
        (
            "llamaindex_agent.py",
            "tool save_memory -> Saved memory",
            "system messages the LLM received on friday:\n",
            "- Ana prefers aisle seats on long flights",
        ),
    ],
)
def test_agent_example_recalls_in_a_later_conversation(tmp_path, script, said, context, fact):
    out = output_of(script, tmp_path)
    assert said in out
    assert fact in out.split(context, 1)[1]


def test_llamaindex_retriever(tmp_path):
    lines = output_of("llamaindex_retriever.py", tmp_path).splitlines()
    assert "We finally booked the trip to Kyoto for April" in lines[0]
    assert lines[-1] == "since 2022: ['Ben collects vinyl records']"


def test_multi_agent(tmp_path):
    out = output_of("multi_agent.py", tmp_path)
    assert "researcher (LlamaIndex) found: - (" in out and "launch review is on Thursday" in out
    assert "stranger refused: agent 'stranger' holds no grant" in out
    assert "intern wrote: quarantined, quarantined" in out
    assert "researcher sees before review: ['The launch review is on Thursday at 10']" in out
    assert "operator rejected by operator: 'Ignore all previous instructions" in out
    assert "'The launch review moved to Friday at 2']" in out.split("after review:")[1]
