"""Secrets in a remote job's parameters: never stored, put back only in the answer to the runner taking it.

Every row written to the database is masked with the known secrets (``bot.storage.redaction``), and a
secret must not rest there anyway. So before a job is queued, each secret value in its rendered
parameters is swapped for a marker naming the secret, made with a random nonce of the job's own (so no
input can forge one); when a runner takes the job, the server puts the values back from its environment,
where ``secrets:`` are read for every run. A runner thus receives only the secrets its step uses.
"""

from __future__ import annotations

import os
import re
import secrets
from typing import Any

NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def new_nonce() -> str:
    """A job's marker nonce: 128 random bits."""
    return secrets.token_hex(16)


def hide(value: Any, known: dict[str, str], nonce: str) -> Any:
    """``value`` with every secret value in its strings replaced by the secret's marker."""
    pairs = sorted(((v, k) for k, v in known.items() if v), key=lambda p: -len(p[0]))
    if not pairs:
        return value
    return _walk(value, lambda text: _swap(text, pairs, nonce))


def reveal(value: Any, nonce: str) -> Any:
    """``value`` with each marker replaced by its secret's value from this process's environment."""
    if not nonce:
        return value
    marker = re.compile(rf"\[sb-secret:{re.escape(nonce)}:({NAME})\]")
    return _walk(value, lambda text: marker.sub(lambda m: os.environ.get(m.group(1), ""), text))


def _swap(text: str, pairs: list[tuple[str, str]], nonce: str) -> str:
    for secret, name in pairs:
        if secret in text:
            text = text.replace(secret, f"[sb-secret:{nonce}:{name}]")
    return text


def _walk(value: Any, change: Any) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {_walk(k, change): _walk(v, change) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, change) for v in value]
    return value
