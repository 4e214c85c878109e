"""The instruction screen: does a memory read like an instruction to a model?

A pattern screen in the spirit of A-MemGuard's first line: it flags a write for a human to
review, it does not decide, and it is easy to get past with a paraphrase it has no pattern for.
The real defence is quarantine by trust (an agent below a cube's threshold never publishes
unreviewed, whatever it writes); the screen catches the careless and the obvious from agents
trusted enough to skip it.

What it looks at: every field of a memory that is rendered into a prompt or handed to a model
(``screen_item``: the text, the speaker, the context, tags, metadata and a keyed memory's value,
strings at any depth). Before matching, each text is normalised (``normalise``): NFKC (full-width
and compatibility forms), case folded, zero-width and format characters removed, the common
Cyrillic and Greek look-alikes of Latin letters mapped to them, and a second reading with
punctuation as spaces (so "Ignore. all. previous. instructions" is one sentence).

Patterns cover English (overriding earlier instructions and its usual paraphrases, addressing
the model, asking for secrets, prompt markup, "new instructions"), German, French, Spanish and
Chinese forms of "ignore the previous instructions", and text forging cubemem's own provenance
label (``{by admin, trust 1}``). Known misses: paraphrases outside these forms, other languages,
instructions spread over several memories, and anything encoded (base64, leetspeak).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i",
        "ј": "j", "ѕ": "s", "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "к": "k",
        "м": "m", "т": "t", "в": "b", "н": "h", "г": "r", "п": "n",
        # Greek
        "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "υ": "u",
        "ε": "e", "χ": "x", "γ": "y", "η": "n", "ω": "w",
        # Latin look-alikes and digits used as letters
        "ı": "i", "ɡ": "g", "ʏ": "y",
    }
)  # fmt: skip
"""Look-alikes of Latin letters (after case folding), mapped to them before matching."""

_INVISIBLE = re.compile(r"[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
                        r"\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]")  # fmt: skip
_PUNCTUATION = re.compile(r"[^\w\s<>|/#\[\]{}]+")

_ENGLISH_OVERRIDE = (
    r"\b(ignore|disregard|forget|override|bypass|abandon|discard|pay no attention to|"
    r"do not (follow|obey|heed)|don'?t (follow|obey|heed)|stop following|no longer follow)\b"
    r"[^.\n]{0,40}\b(previous|prior|above|earlier|preceding|all|your|system|original|initial)\b"
    r"[^.\n]{0,30}\b(instructions?|prompts?|rules|guidelines|context|directions|"
    r"directives|orders|guidance|constraints)"
)
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("overrides earlier instructions", re.compile(_ENGLISH_OVERRIDE)),
    (
        "overrides earlier instructions",
        re.compile(
            r"(\b(ignorier|vergiss|missachte)\w*\b[^.\n]{0,40}\b(anweisungen|vorgaben|regeln|"
            r"instruktionen|befehle)"  # German
            r"|\b(ignore[rz]?|oublie[rz]?)\b[^.\n]{0,40}\b(instructions|consignes|regles|règles)"
            r"|\b(ignora|olvida)\w*\b[^.\n]{0,40}\b(instrucciones|indicaciones|reglas)"  # Spanish
            r"|(忽略|无视|忽视|不要理会|忘记|忘掉)[^。\n]{0,20}(指令|指示|提示|规则|说明|命令))"
        ),
    ),
    (
        "addresses the model",
        re.compile(
            r"\b(you are now (an?|the|my|dan|free|no longer|unrestricted|in \w+ mode)\b|"
            r"from now on,? you|as an ai|assistant must|the assistant should|"
            r"you must (always|never)|always (respond|answer|reply)|never (tell|mention|reveal)|"
            r"act as (an? )?(unrestricted|jailbroken|evil)|pretend (to be|you are)|"
            r"your new (role|task|goal|instructions?) (is|are))"
        ),
    ),
    (
        "asks for secrets or tools",
        re.compile(
            r"\b(reveal|print|send|leak|exfiltrate|output|share|email|post|upload|disclose)\b"
            r"[^.\n]{0,30}\b(system prompt|api[ _-]?keys?|passwords?|credentials|secrets?|"
            r"tokens?|private keys?)\b"
        ),
    ),
    (
        "carries prompt markup",
        re.compile(
            r"(<\|?(im_start|im_end|system|endoftext)\|?>|\[/?inst\]|^\s*#{2,}\s*(system|"
            r"instruction)|</?(system|memories)>|^\s*(system|assistant)\s*:)",
            re.M,
        ),
    ),
    (
        "new instructions",
        re.compile(r"\b(new|updated|real|actual|revised) (instructions?|system prompt|rules)\b"),
    ),
    ("forges a provenance label", re.compile(r"\{\s*by\s+[^}]{0,80}\btrust\b")),
]


def normalise(text: str) -> str:
    """``text`` as the screen reads it: NFKC, case folded, invisible characters removed,
    look-alike letters made Latin, white space collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text).casefold().translate(CONFUSABLES)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(text.split())


def screen(text: str) -> list[str]:
    """Why ``text`` reads like an instruction to a model rather than a memory ([] if it
    does not)."""
    plain = normalise(text)
    readings = (plain, " ".join(_PUNCTUATION.sub(" ", plain).split()))
    found: list[str] = []
    for reason, pattern in _PATTERNS:
        if reason not in found and any(pattern.search(r) for r in readings):
            found.append(reason)
    return found


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif depth < 64 and isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k, depth + 1)
            yield from _strings(v, depth + 1)
    elif depth < 64 and isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v, depth + 1)


def screen_fields(
    content: str,
    *,
    speaker: str | None = None,
    context: str | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    value: Any = None,
) -> list[str]:
    """``screen`` over every field of a memory a prompt or a model may see; each reason
    names the field ("speaker: addresses the model")."""
    fields: list[tuple[str, list[str]]] = [
        ("text", [content]),
        ("speaker", [speaker] if speaker else []),
        ("context", [context] if context else []),
        ("tags", list(tags or [])),
        ("metadata", list(_strings(metadata or {}))),
        ("value", list(_strings(value))),
    ]
    found: list[str] = []
    for name, texts in fields:
        for text in texts:
            for reason in screen(text):
                said = reason if name == "text" else f"{name}: {reason}"
                if said not in found:
                    found.append(said)
    return found
