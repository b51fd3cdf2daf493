"""A CLI command loads only what it needs: no chat platform, conversation or LLM code for workflow commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SURFACES = (
    "slack_bolt",
    "slack_sdk",
    "discord",
    "openai",
    "authlib",
    "aiohttp",
    "bot.platforms",
    "bot.conversations",
    "bot.web_auth",
)


def loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    modules: list[str] = json.loads(done.stdout.splitlines()[-1])
    return [m for m in modules if m.split(".")[0] in SURFACES or m.startswith(SURFACES)]


def test_importing_the_cli_loads_no_chat_or_llm_code() -> None:
    assert loaded_after("import bot.cli.main") == []


def test_the_resume_command_loads_no_chat_or_llm_code() -> None:
    code = "import bot.cli.main as m; m.resolve(m.build_parser().parse_args(['workflow', 'resume', '--all']).handler)"
    assert loaded_after(code) == []


def test_every_command_names_a_handler_that_exists() -> None:
    code = """
import argparse, bot.cli.main as m
def walk(p):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                yield from walk(sub)
    if p.get_default('handler'):
        yield p.get_default('handler')
for ref in walk(m.build_parser()):
    assert callable(m.resolve(ref)), ref
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
