"""Personal data found in text and redacted before a memory is stored, queued or embedded.

What is found, offline, each candidate checked by a well-kept library where one exists:

- ``email``: addresses (a pattern; there is nothing to check beyond the shape);
- ``phone``: Google's libphonenumber (``phonenumbers.PhoneNumberMatcher``, numbers valid for
  their region; international ``+`` numbers anywhere, national ones for ``phone_region``);
- ``card``: payment card numbers, 13 to 19 digits with an issuer's first digit, kept only
  when their Luhn check holds (``stdnum.luhn``);
- ``iban``: IBANs whose country format and check digits hold (``stdnum.iban``);
- ``national_id``: US SSN, UK National Insurance number, Spanish DNI/NIE, Brazilian CPF,
  Indian Aadhaar, French NIR and Italian codice fiscale, each in its usual written form and
  kept only when its own check holds (``stdnum``);
- ``ip``: IPv4 and IPv6 addresses (``ipaddress``);
- ``api_key``: secrets of known shapes (OpenAI/Anthropic ``sk-``, GitHub ``ghp_``/
  ``github_pat_``, AWS ``AKIA``, Slack ``xox?-``, Google ``AIza``, GitLab ``glpat-``, JWTs,
  ``Bearer`` tokens) and long random-looking tokens (32+ characters mixing upper case, lower
  case and digits, with high entropy — not a hex digest or an id).

What is done with each kind is the cube's ``RedactionPolicy``: ``off``, ``mask`` (``[EMAIL]``),
``drop`` (the span removed) or ``hash`` (``[EMAIL:1f3a9c0e2b7d]``, a keyed hash, the same for
the same value in one cube, so "the same address" can still be matched). A user's own NER
engine adds its findings through ``cube.maintenance.pii_detectors``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cubemem.manifest import MANIFEST_NAME, read_manifest
from cubemem.model.governance import KINDS, PiiKind, RedactionPolicy, RetentionRule


@dataclass(frozen=True)
class Finding:
    """One piece of personal data in a text: its kind and where it is."""

    kind: PiiKind
    start: int
    end: int


Detector = Callable[[str], Iterable[Finding]]

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![\w-])"
)
_KEYS = re.compile(
    "|".join(
        [
            r"\b(?:sk|pk|rk)-(?:proj-|ant-(?:api\d\d-)?|live_|test_|live-|test-)?[A-Za-z0-9_-]{20,}",
            r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",
            r"\bgithub_pat_[A-Za-z0-9_]{22,}\b",
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
            r"\bAIza[0-9A-Za-z_-]{35}",
            r"\bglpat-[A-Za-z0-9_-]{20,}",
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
            r"(?i:\bbearer\s+)[A-Za-z0-9._~+/-]{20,}=*",
        ]
    )
)
_TOKEN = re.compile(r"(?<![A-Za-z0-9_+/=-])[A-Za-z0-9_+/=-]{32,}(?![A-Za-z0-9_+/=-])")
_CARD = re.compile(r"(?<![\d-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_MARKER = re.compile(
    r"\[(?:API_KEY|EMAIL|IBAN|CARD|NATIONAL_ID|IP|PHONE)(?::[0-9a-f]{12})?\]"
)  # what a redaction wrote
_IDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "stdnum.us.ssn"),
    (re.compile(r"\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"), "nino"),
    (re.compile(r"\b\d{8}-?[A-Z]\b"), "stdnum.es.dni"),
    (re.compile(r"\b[XYZ]-?\d{7}-?[A-Z]\b"), "stdnum.es.nie"),
    (re.compile(r"\b\d{3}\.\d{3}\.\d{3}-\d{2}\b"), "stdnum.br.cpf"),
    (re.compile(r"\b\d{4} \d{4} \d{4}\b"), "stdnum.in_.aadhaar"),
    (re.compile(r"\b[12] ?\d{2} ?\d{2} ?\d{2} ?\d{3} ?\d{3} ?\d{2}\b"), "stdnum.fr.nir"),
    (re.compile(r"\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b"), "stdnum.it.codicefiscale"),
]


def _nino(value: str) -> bool:
    """A UK National Insurance number's prefix rules (python-stdnum has no check for it)."""
    prefix = value[:2]
    return (
        prefix[0] not in "DFIQUV"
        and prefix[1] not in "DFIOQUV"
        and prefix not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")
    )


def _valid(module: str, value: str) -> bool:
    import importlib

    if module == "nino":
        return _nino(value)
    try:
        return bool(importlib.import_module(module).is_valid(value))
    except Exception:  # a check that cannot run finds nothing rather than failing a write
        return False


def _emails(text: str) -> Iterator[Finding]:
    for m in _EMAIL.finditer(text):
        yield Finding("email", m.start(), m.end())


def _api_keys(text: str) -> Iterator[Finding]:
    for m in _KEYS.finditer(text):
        yield Finding("api_key", m.start(), m.end())
    for m in _TOKEN.finditer(text):
        token = m.group()
        classes = sum(bool(re.search(p, token)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
        if classes == 3 and _entropy(token) >= 4.0:
            yield Finding("api_key", m.start(), m.end())


def _entropy(token: str) -> float:
    counts = Counter(token)
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())


def _cards(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _valid("stdnum.luhn", digits):
            yield Finding("card", m.start(), m.end())


def _ibans(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        if _valid("stdnum.iban", m.group()):
            yield Finding("iban", m.start(), m.end())


def _national_ids(text: str) -> Iterator[Finding]:
    for pattern, module in _IDS:
        for m in pattern.finditer(text):
            if _valid(module, m.group()):
                yield Finding("national_id", m.start(), m.end())


def _ips(text: str) -> Iterator[Finding]:
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            try:
                ipaddress.ip_address(m.group())
            except ValueError:
                continue
            yield Finding("ip", m.start(), m.end())


def _phones(region: str) -> Detector:
    def find(text: str) -> Iterator[Finding]:
        import phonenumbers

        matcher = phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        )
        for match in matcher:
            yield Finding("phone", match.start, match.end)

    return find


class Redactor:
    """Finds personal data by a ``RedactionPolicy`` and rewrites text by it.

    ``extra``: more detectors (a NER engine the user has, such as Presidio's
    ``AnalyzerEngine``, wrapped as ``text -> [Finding]``), run after the built-in ones."""

    def __init__(self, policy: RedactionPolicy, extra: Iterable[Detector] = ()) -> None:
        self.policy = policy
        order: list[tuple[PiiKind, Detector]] = [
            ("api_key", _api_keys),
            ("email", _emails),
            ("iban", _ibans),
            ("card", _cards),
            ("national_id", _national_ids),
            ("ip", _ips),
            ("phone", _phones(policy.phone_region)),
        ]
        self._detectors = [d for kind, d in order if policy.action(kind) != "off"]
        self._extra = list(extra)

    def find(self, text: str) -> list[Finding]:
        """What the policy redacts in ``text``, without overlaps (the first detector wins:
        a key before an e-mail, a card before a phone number). What an earlier redaction
        wrote (``[EMAIL]``, ``[PHONE:1f3a9c0e2b7d]``) is never found again: redacting twice
        changes nothing."""
        taken: list[Finding] = [
            Finding("api_key", m.start(), m.end()) for m in _MARKER.finditer(text)
        ]
        marks = len(taken)
        for detector in [*self._detectors, *self._extra]:
            for found in detector(text):
                if self.policy.action(found.kind) == "off":
                    continue
                if all(found.end <= t.start or found.start >= t.end for t in taken):
                    taken.append(found)
        return sorted(taken[marks:], key=lambda f: f.start)

    def text(self, text: str, counts: Counter[str] | None = None) -> str:
        """``text`` with what the policy names masked, dropped or hashed."""
        joined = self._rewritten(text, counts, identifier=False)
        if joined is text or "drop" not in self.policy.actions():
            return joined
        return re.sub(r"[ \t]{2,}", " ", joined)

    def identifier(self, text: str, counts: Counter[str] | None = None) -> str:
        """``text`` used as a name (a user, a session, a speaker, a key, a namespace label, a
        metadata key) with what the policy redacts always hashed, whatever its action says
        (``off`` aside): masked or dropped, two users would become one, and a lookup by the
        same name finds what was stored under it."""
        return self._rewritten(text, counts, identifier=True)

    def value(self, value: Any, counts: Counter[str] | None = None) -> Any:
        """Every string inside a JSON value (metadata, a keyed value) redacted: its keys as
        identifiers, its strings as text."""
        if isinstance(value, str):
            return self.text(value, counts)
        if isinstance(value, list | tuple):
            return [self.value(v, counts) for v in value]
        if isinstance(value, dict):
            return {
                self.identifier(k, counts) if isinstance(k, str) else k: self.value(v, counts)
                for k, v in value.items()
            }
        return value

    def _rewritten(self, text: str, counts: Counter[str] | None, *, identifier: bool) -> str:
        found = self.find(text) if text else []
        if not found:
            return text
        out, at = [], 0
        for f in found:
            out.append(text[at : f.start])
            out.append(self._replacement(f.kind, text[f.start : f.end], identifier))
            at = f.end
            if counts is not None:
                counts[f.kind] += 1
        out.append(text[at:])
        return "".join(out)

    def _replacement(self, kind: PiiKind, value: str, identifier: bool = False) -> str:
        action = "hash" if identifier else self.policy.action(kind)
        label = kind.upper()
        if action == "drop":
            return ""
        if action == "hash":
            key = self.policy.salt.encode()
            digest = hmac.new(key, " ".join(value.split()).encode(), hashlib.sha256).hexdigest()
            return f"[{label}:{digest[:12]}]"
        return f"[{label}]"


class PolicyFile:
    """The governance of the cube in a folder — its redaction policy and retention rules, in
    its manifest — read again whenever ``cube.json`` changes (a policy set by another process
    applies from its next write here)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._seen: tuple[int, int] | None = None
        self._redactor: Redactor | None = None
        self._rules: list[RetentionRule] = []
        self._lock = threading.Lock()

    def _read(self) -> None:
        if self.folder is None:
            return
        try:
            stat = (self.folder / MANIFEST_NAME).stat()
        except OSError:
            return
        seen = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if seen != self._seen:
                manifest = read_manifest(self.folder)
                policy = manifest.redaction
                self._redactor = Redactor(policy) if policy is not None and policy.active else None
                self._rules = list(manifest.retention)
                self._seen = seen

    def retention(self) -> list[RetentionRule]:
        self._read()
        return self._rules

    def redactor(self, extra: Iterable[Detector] = ()) -> Redactor | None:
        self._read()
        redactor = self._redactor
        extra = list(extra)
        if extra and redactor is not None:
            return Redactor(redactor.policy, extra)
        return redactor


__all__ = ["KINDS", "Detector", "Finding", "PolicyFile", "Redactor"]
