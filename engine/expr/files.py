"""hashFiles(): the SHA-256 of the files a set of glob patterns matches inside the workflow's folder.

Patterns are relative to that folder (``**`` crosses folders); a pattern starting with ``!`` excludes.
Files are taken in path order; the result is the SHA-256 of their SHA-256 digests one after another,
as GitHub computes it, or '' when nothing matches. Nothing outside the folder is ever read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

MAX_FILES = 10_000


def hash_files(root: str, patterns: list[str], spend: Callable[[int], None]) -> str:
    """The hex digest of the matching files, or '' if none match."""
    base = Path(root).resolve()
    included: set[Path] = set()
    excluded: set[Path] = set()
    for raw in patterns:
        pattern = raw.strip()
        negate = pattern.startswith("!")
        pattern = pattern[1:] if negate else pattern
        if not pattern or PurePosixPath(pattern).is_absolute() or ".." in PurePosixPath(pattern).parts:
            raise ValueError(f"hashFiles() pattern {raw!r} must be relative to the workflow's folder")
        if pattern.endswith("**"):
            pattern += "/*"  # 'dir/**' means every file below dir
        found = {p for p in base.glob(pattern) if p.is_file()}
        spend(len(found) + 1)
        if len(found) > MAX_FILES:
            raise ValueError(f"hashFiles() pattern {raw!r} matches more than {MAX_FILES:,} files")
        (excluded if negate else included).update(found)
    files = sorted(p for p in included - excluded if _inside(p.resolve(), base))
    if not files:
        return ""
    outer = hashlib.sha256()
    for path in files:
        inner = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                inner.update(chunk)
        outer.update(inner.digest())
    return outer.hexdigest()


def _inside(path: Path, base: Path) -> bool:
    return path == base or base in path.parents
