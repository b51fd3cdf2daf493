"""Warnings for ``validate``: an http step whose host comes from an input, so whoever starts it picks
where it sends (and what it reads back). The guard still refuses Switchboard itself and metadata
addresses at run time; the warning points the author at a fixed host with a variable path instead."""

from __future__ import annotations

from engine.expr.parser import parse
from engine.expr.template import split
from engine.expressions import ExpressionError
from engine.loader import LoadedWorkflow, WorkflowError
from engine.source_map import locate, parse_yaml
from engine.spec import HttpSpec


def input_host_warnings(loaded: LoadedWorkflow) -> list[WorkflowError]:
    """One warning, at the url's position, for each http url whose host part reads ``inputs``."""
    found: list[tuple[tuple[str, ...], HttpSpec]] = []
    for key, step in loaded.spec.steps.items():
        if step.http is not None:
            found.append((("steps", key, "http", "url"), step.http))
        if step.compensate is not None and step.compensate.http is not None:
            found.append((("steps", key, "compensate", "http", "url"), step.compensate.http))
    risky = [(loc, spec) for loc, spec in found if _host_reads_inputs(spec.url)]
    if not risky:
        return []
    root, _ = parse_yaml(loaded.source)
    return [
        WorkflowError(
            loaded.path,
            *locate(root, loc, "value"),
            f"warning: step '{loc[1]}' takes its url's host from an input, so whoever starts the run "
            "chooses where it sends; fix the host and pass only the path or a parameter",
        )
        for loc, spec in risky
    ]


def _host_reads_inputs(url: str) -> bool:
    """Whether an expression in the scheme-and-host part of ``url`` (before the path) reads inputs."""
    try:
        pieces = split(url)
    except ExpressionError:
        return False
    seen_scheme = False
    for piece in pieces:
        if piece.expression:
            try:
                names = {name.lower() for name, _ in parse(piece.text.strip()).contexts}
            except ExpressionError:
                names = set()
            if "inputs" in names:
                return True
            continue
        text = piece.text
        if not seen_scheme and "://" in text:
            seen_scheme = True
            text = text.split("://", 1)[1]
        if any(c in text for c in "/?#"):
            return False  # the path has begun: what follows cannot change the host
        seen_scheme = True
    return False
