"""Masking secret values out of text: the value itself and the encodings a program is likely to print.

Besides the value, each secret is masked as base64 (standard and URL-safe, with and without padding,
and at each of the three byte offsets it can sit at inside a longer encoded text, such as
``user:secret`` in a Basic auth header), URL-encoded, JSON-escaped (once and twice), hex, and
reversed. Matching ignores case, so ``upper`` and ``lower`` spellings are masked too. Encodings of
values shorter than ``MIN_ENCODED`` characters are not masked: they would match ordinary text.

The static check (``engine.secret_flow``) keeps secrets out of displayed fields and refuses any
transformation; this is the second line of defence, for what programs print and services echo.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_ENCODED = 6  # characters a secret needs before its encodings are masked too
_MIN_FRAGMENT = 6  # characters an offset base64 fragment needs to be worth masking


class Masker:
    """Replaces every known form of a set of secrets with ``***`` in strings, lists and mappings."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form for secret in secrets if secret for form in variants(secret)}
        ordered = sorted(forms, key=lambda f: (-len(f), f))  # the longest form wins where several match
        self.pattern = re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE) if ordered else None
        self._lowered = tuple(dict.fromkeys(f.lower() for f in ordered))
        self._shortest = min(map(len, ordered), default=0)

    def text(self, value: str) -> str:
        """``value`` with every form of every secret masked."""
        if self.pattern is None or len(value) < self._shortest or not self._present(value):
            return value
        return self.pattern.sub(MASK, value)

    def _present(self, value: str) -> bool:
        # str.find is far quicker than the case-blind regex, and most text holds no secret. ASCII
        # only: lower() keeps ASCII text's length and matches the regex's case folding exactly.
        if not value.isascii():
            return True
        lowered = value.lower()
        return any(form in lowered for form in self._lowered)

    def value(self, value: Any) -> Any:
        """Strings, list items and mapping keys and values masked; the same object when nothing changed."""
        if self.pattern is None:
            return value
        return self._value(value, 0)

    def _value(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if depth > 200:  # deeper than stored data goes (fromJSON's own bound); leave it as it is
            return value
        if isinstance(value, list | tuple):
            items = [self._value(v, depth + 1) for v in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, dict):
            pairs = [(self._value(k, depth + 1), self._value(v, depth + 1)) for k, v in value.items()]
            if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(pairs, value.items(), strict=True)):
                return value
            return dict(pairs)
        return value


@lru_cache(maxsize=256)
def masker(secrets: frozenset[str]) -> Masker:
    """The masker of a set of secret values, built once per set."""
    return Masker(secrets)


def mask(value: Any, secrets: Iterable[str]) -> Any:
    """Every secret value, and its common encodings, in strings, lists and mappings replaced by ``***``."""
    hidden = frozenset(s for s in secrets if s)
    if not hidden:
        return value
    return masker(hidden).value(value)


def variants(secret: str) -> set[str]:
    """The forms of ``secret`` that are masked: itself, reversed, and (when long enough) its encodings."""
    forms = {secret, secret[::-1]}
    if len(secret) < MIN_ENCODED:
        return forms
    raw = secret.encode("utf-8")
    escaped = json.dumps(secret)[1:-1]
    forms |= {
        escaped,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(escaped)[1:-1],  # JSON inside JSON: an escaped payload in a log line
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        raw.hex(),
    }
    for encoded in _base64_forms(raw):
        forms |= {encoded, encoded.translate(_URLSAFE)}
    return {f for f in forms if f}


def _base64_forms(raw: bytes) -> set[str]:
    """The secret's base64 (padded and not), and at each offset the characters made only of its bits."""
    whole = base64.b64encode(raw).decode("ascii")
    forms = {whole, whole.rstrip("=")}
    bits = 8 * len(raw)
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + raw + bytes(3)).decode("ascii")
        start = -(-8 * shift // 6)  # the first character made only of the secret's bits
        end = (8 * shift + bits) // 6  # past the last one
        if end - start >= _MIN_FRAGMENT:
            forms.add(encoded[start:end])
    return forms


_URLSAFE = str.maketrans("+/", "-_")
