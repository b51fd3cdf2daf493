"""Reading the hand-over file (``SWITCHBOARD_HANDOVER_FILE``): YAML, checked at start-up, every problem
reported with its line and column as ``switchboard workflow validate`` reports a workflow's."""

from __future__ import annotations

import difflib
from pathlib import Path

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap

from bot.conversations.handover_rules import HandoverFile, Route, Scope, Triggers, unknown_platforms
from bot.errors import BadInput
from engine.diagnostics import issues_from
from engine.source_map import locate, parse_yaml, plain

MAX_BYTES = 1_000_000


def load_handover_file(path: Path | None) -> HandoverFile:
    """The file's rules (no file set: none, so the environment's settings hold everywhere)."""
    if path is None:
        return HandoverFile()
    try:
        if path.stat().st_size > MAX_BYTES:
            raise BadInput(f"{path}: the hand-over file is over {MAX_BYTES // 1000} kB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such hand-over file (SWITCHBOARD_HANDOVER_FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the hand-over file: {exc}") from None
    return parse_handover(text, str(path))


def parse_handover(text: str, source: str) -> HandoverFile:
    """Parse and check the file's text; a ``BadInput`` lists every problem as ``source:line:col: ...``."""
    root, syntax = parse_yaml(text)
    problems = [f"{source}:{line}:{col}: {message}" for line, col, message in syntax]
    if root is None and not problems:
        return HandoverFile()  # an empty file: nothing configured
    if root is not None and not isinstance(root, CommentedMap):
        problems.append(f"{source}:1:1: the hand-over file must be a mapping (defaults, channels, workflows)")
    if problems:
        raise BadInput("invalid hand-over file:\n" + "\n".join(problems))
    data = plain(root)
    try:
        parsed = HandoverFile.model_validate(data)
    except ValidationError as exc:
        unknown = [e for e in exc.errors() if e["type"] == "extra_forbidden"]
        for err in unknown:  # the workflow diagnostics know a workflow's keys, not this file's
            loc = tuple(err["loc"])
            line, col = locate(root, loc, "key")
            valid = _keys_at(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys are: {', '.join(valid)}"
            where = ".".join(map(str, loc[:-1])) or "the top level"
            problems.append(f"{source}:{line}:{col}: unknown key '{loc[-1]}' in {where}; {hint}")
        for issue in issues_from(exc, data):
            if issue.message.startswith("unknown key"):
                continue
            line, col = locate(root, issue.loc, issue.at)
            problems.append(f"{source}:{line}:{col}: {issue.message}")
        raise BadInput("invalid hand-over file:\n" + "\n".join(problems)) from None
    for key in unknown_platforms(parsed):
        line, col = locate(root, ("channels", key), "key")
        prefix = key.partition(":")[0]
        problems.append(
            f"{source}:{line}:{col}: channel {key!r} names the platform {prefix!r}; "
            "use slack:, discord: or console:, or a bare channel id"
        )
    if problems:
        raise BadInput("invalid hand-over file:\n" + "\n".join(problems))
    return parsed


# Where the keys of a scope sit: defaults, channels.<key>, workflows.<name>; then triggers or routes[i].
_SCOPE_DEPTH = {"defaults": 1, "channels": 2, "workflows": 2}


def _keys_at(loc: tuple[object, ...]) -> list[str]:
    """The keys the mapping at ``loc`` accepts."""
    model: type[BaseModel] = HandoverFile
    depth = _SCOPE_DEPTH.get(str(loc[0]), 0) if loc else 0
    rest = loc[depth:] if depth else loc
    if depth:
        model = Scope
    if rest[:1] == ("triggers",):
        model = Triggers
    elif rest[:1] == ("routes",):
        model = Route
    return list(model.model_fields)
