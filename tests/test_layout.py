"""The engine stays a library: it imports nothing from the bot process or the chat platforms."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
FORBIDDEN = ("bot", "handlers", "cards", "slack_bolt", "slack_sdk", "discord")


def test_engine_imports_no_process_or_platform_code() -> None:
    offenders = []
    for path in ENGINE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_the_decision_core_does_no_io() -> None:
    io_modules = {"asyncio", "aiohttp", "sqlalchemy", "subprocess", "socket", "time", "os", "openai"}
    for name in (
        "core.py",
        "core_base.py",
        "scheduling.py",
        "step_outcomes.py",
        "run_finishing.py",
        "approval_flow.py",
        "saga.py",
        "rules.py",
        "state.py",
        "signals.py",
        "params.py",
    ):
        tree = ast.parse((ENGINE / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & io_modules, name
            elif isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in io_modules, name
