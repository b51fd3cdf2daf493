"""Inputs that could exhaust the machine are refused with a message naming the bound (issue 18, item 7).

Expressions (no arithmetic to blow up, and work, depth and result size bounded), workflow files (size,
nesting, alias bombs), through the real ``switchboard workflow validate`` process where it matters.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.config import Settings
from bot.errors import NotFound
from bot.process import start_app, stop_app
from bot.runtime.catalog import Catalog
from bot.runtime.runtime import Runtime
from bot.storage.tables import action_log
from engine.expr.errors import MAX_DEPTH, MAX_RESULT, MAX_WORK
from engine.expressions import ExpressionError, evaluate, render
from engine.loader import WorkflowInvalid, load_text
from engine.text_caps import (
    MAX_CHAT_TEXT,
    MAX_EVENT_BYTES,
    MAX_RUN_OUTPUT_BYTES,
    run_outputs_problem,
    run_outputs_within_cap,
)
from engine.yaml_bounds import MAX_BYTES, MAX_NESTING, MAX_NODES
from handlers.chat_text import MAX_INPUT_TEXT
from tests.fakes.openai_server import Text
from tests.helpers import eventually, finished, workflow
from tests.test_cli import environment, finish_now, start
from tests.test_console_api import Client
from tests.test_slack import RELEASE, Harness, ephemeral_texts, slack
from tests.test_slack_conversations import DM, harness, posts
from tests.test_slack_conversations import Harness as ConversationHarness

__all__ = ["harness", "slack"]  # the Slack harnesses' fixtures, used by name below

TEN = "{0}" * 10
BIG = {"inputs": {"big": ["x" * 1000] * 5000, "s": "x" * 1_000_000, "piece": "y" * 100_000}}


@pytest.mark.parametrize("text", ["9**(9**10)", "'a'*10**9", "2 * 3", "inputs.n ** 2"])
def test_powers_and_arithmetic_do_not_parse(text: str) -> None:
    with pytest.raises(ExpressionError, match="the language has no arithmetic or powers"):
        evaluate(text, {"inputs": {"n": 3}})


@pytest.mark.parametrize(
    ("text", "function"),
    [
        (f"format('{TEN}', format('{TEN}', format('{TEN}', format('{TEN}', format('{TEN}', "
         f"format('{TEN}', 'aaaaaaaaaa'))))))", "format"),
        ("toJSON(inputs.big)", "toJSON"),
        (f"join(inputs.big, format('{TEN}', format('{TEN}', 'aaaaaaaaa')))", "join"),
        ("fromJSON(format('[{0}]', join(inputs.big, ',')))", "join"),
    ],
)  # fmt: skip
def test_growth_through_functions_stops_at_the_result_bound(text: str, function: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(text, BIG)
    assert f"{function}()" in str(caught.value)
    assert f"{MAX_RESULT:,}" in str(caught.value) and "result size bound" in str(caught.value)


def test_a_string_of_many_expressions_is_bounded_as_a_whole() -> None:
    assert len(render("${{ inputs.piece }}" * 2, BIG)) == 200_000
    with pytest.raises(ExpressionError, match=f"longer than {MAX_RESULT:,} characters"):
        render("${{ inputs.piece }}-" * 20, BIG)


@pytest.mark.parametrize(
    "text",
    [
        "(" * 100 + "true" + ")" * 100,
        "!" * 100 + "true",
        "inputs" + ".a" * 100,
        "format('{0}', " * 100 + "1" + ")" * 100,
    ],
)
def test_deep_nesting_is_refused_with_the_limit_named(text: str) -> None:
    with pytest.raises(ExpressionError, match=f"Exceeded max expression depth {MAX_DEPTH}"):
        evaluate(text, {"inputs": {}})


@pytest.mark.parametrize(
    "text",
    [
        " || ".join(["contains(inputs.s, 'y')"] * 700),
        " || ".join(["inputs.s == 'y'"] * 1000),
        " || ".join(["inputs.s < inputs.s"] * 900),
        " || ".join(["startsWith(inputs.s, 'y')"] * 700),
    ],
)
def test_comparing_and_searching_long_text_counts_as_work(text: str) -> None:
    assert evaluate("contains(inputs.s, 'y')", BIG) is False  # once is cheap
    with pytest.raises(ExpressionError, match=f"more than {MAX_WORK:,} steps \\(the work bound\\)"):
        evaluate(text, BIG)


HEAD = "name: bomb\nsteps:\n  a: {run: [echo, hi]}\n"


def alias_bomb(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    return HEAD + "\n".join(lines) + "\n"


def errors_of(text: str) -> list[str]:
    with pytest.raises(WorkflowInvalid) as caught:
        load_text(text, "wf.yaml")
    return [str(e) for e in caught.value.errors]


def test_an_alias_bomb_is_refused_before_it_is_expanded() -> None:
    [error] = errors_of(alias_bomb(12))  # 10**12 values once expanded
    assert error.startswith("wf.yaml:8:")  # l4 holds 10**5 values
    assert f"more than {MAX_NODES:,} values with its aliases expanded (the node limit)" in error


def test_aliases_within_the_node_limit_still_load() -> None:
    text = "name: ok\nenv: &shared {A: '1'}\nsteps:\n  a: {run: [echo, hi], env: *shared}\n"
    assert load_text(text, "wf.yaml").spec.steps["a"].env == {"A": "1"}


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    [error] = errors_of(HEAD + "loop: &me [*me]\n")
    assert "wf.yaml:4:12: the alias *me sits inside its own anchor (YAML that holds itself)" in error


def test_deep_yaml_is_refused_without_a_recursion_error() -> None:
    depth = sys.getrecursionlimit() + 10
    [error] = errors_of(HEAD + "deep: " + "[" * depth + "]" * depth + "\n")
    assert f"nests deeper than {MAX_NESTING} levels (the nesting limit)" in error


def test_validate_refuses_hostile_files_promptly_and_checks_the_rest(tmp_path: Path) -> None:
    files = {
        "bomb.yaml": alias_bomb(9),
        "deep.yaml": HEAD + "deep: " + "[" * 5000 + "]" * 5000 + "\n",
        "huge.yaml": HEAD + "# " + "x" * (MAX_BYTES + 10) + "\n",
        "power.yaml": HEAD.replace("[echo, hi]", "[echo, '${{ 9**(9**10) }}']"),
        "fine.yaml": HEAD.replace("bomb", "fine"),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'db'}", tmp_path)
    validating = start(env, "workflow", "validate", str(tmp_path))
    running = start(env, "workflow", "run", "bomb")
    ran = finish_now(running, timeout=60)
    assert ran.code == 2 and "Traceback" not in ran.out, ran.out
    assert f"{tmp_path / 'bomb.yaml'}:8:" in ran.out and "(the node limit)" in ran.out
    result = finish_now(validating, timeout=60)
    assert result.code == 2, result.out
    out = result.out
    assert "Traceback" not in out and "RecursionError" not in out, out
    assert f"{tmp_path / 'bomb.yaml'}:8:" in out and "(the node limit)" in out
    assert f"{tmp_path / 'deep.yaml'}:4:" in out and "(the nesting limit)" in out
    assert f"{tmp_path / 'huge.yaml'}:1:1: the file holds more than {MAX_BYTES:,} characters" in out
    assert f"{tmp_path / 'power.yaml'}:3:" in out and "no arithmetic or powers" in out
    assert f"{tmp_path / 'fine.yaml'}: valid" in out


# -- chat names workflows only from the workflows folder ---------------------------------------------

HELLO = "name: hello\nsteps:\n  say: {run: [echo, hi]}\n"


def test_a_symlink_leading_out_of_the_workflows_folder_is_not_a_workflow(tmp_path: Path) -> None:
    folder, secret = tmp_path / "workflows", tmp_path / "elsewhere"
    folder.mkdir()
    secret.mkdir()
    (folder / "hello.yaml").write_text(HELLO)
    (secret / "outside.yaml").write_text(HELLO.replace("hello", "outside"))
    (folder / "outside.yaml").symlink_to(secret / "outside.yaml")
    (folder / "passwd.yaml").symlink_to("/etc/passwd")
    (folder / "dangling.yaml").symlink_to(tmp_path / "gone.yaml")
    (folder / "shared").mkdir()
    (folder / "shared" / "greet.yaml").write_text(HELLO.replace("hello", "greet"))
    (folder / "greet.yaml").symlink_to(folder / "shared" / "greet.yaml")  # inside the folder: fine
    catalog = Catalog(folder)
    for name in ("outside", "passwd", "dangling"):
        with pytest.raises(NotFound) as refused:
            catalog.find(name)
        # The answer of a name that does not exist: nothing is learnt about the file it leads to.
        assert str(refused.value) == f"No workflow named {name}. Workflows: greet, hello."
    assert catalog.find("greet").spec.name == "greet"


# -- invalid Unicode from chat ------------------------------------------------------------------------

SURROGATE_REPLY = "Your message holds a character that is not valid Unicode (U+D800, a lone surrogate)"


async def test_a_lone_surrogate_or_a_huge_value_in_a_slack_form_gets_a_clear_reply(slack: Harness) -> None:
    fake = slack.fake
    workflow(RELEASE, slack.workflows)
    assert (await slack.send.command("run release service=api")).status == 200
    view = (await eventually(lambda: fake.views))[0]
    # Slack's payload is JSON, where "\ud800" is a legal escape that decodes to a lone surrogate.
    answer = await slack.send.submit(view, {"service": "ap\ud800i", "count": "3", "env": "prod"})
    assert answer.status == 200
    [text] = await eventually(lambda: ephemeral_texts(fake))
    assert text.startswith(SURROGATE_REPLY) and "Something went wrong" not in text
    huge = "a" * (MAX_INPUT_TEXT + 1)
    assert (await slack.send.submit(view, {"service": huge, "count": "3", "env": "prod"})).status == 200
    [_, text] = await eventually(lambda: ephemeral_texts(fake) if len(ephemeral_texts(fake)) == 2 else None)
    assert text.startswith(
        f"That is {MAX_INPUT_TEXT + 1:,} characters; a command or a form field takes at most"
    )
    assert f"{MAX_INPUT_TEXT:,} (the input text cap)" in text
    assert await slack.app.runtime.store.list_runs() == []
    async with slack.app.runtime.store.engine.connect() as conn:  # the refusals are in the action log
        logged = (await conn.execute(sa.select(action_log.c.detail, action_log.c.outcome))).all()
    refused = ({"form_id": "sb:form:run:release", "fields": ["count", "env", "service"]}, "BadInput")
    assert [(row.detail, row.outcome) for row in logged].count(refused) == 2


async def test_a_lone_surrogate_typed_in_the_console_gets_a_clear_reply(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "hello.yaml").write_text(HELLO)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'db'}", workflows_dir=folder, port=0)
    app = await start_app(settings)
    try:
        async with Client(app.url) as client:
            for text in ("/workflow run hello who=\ud800", "/workflow run he\ud800llo", "hi \ud800 there"):
                # json.dumps writes the lone surrogate as the escape \ud800, which is legal JSON.
                answer = await client.post("/api/command", {"channel": "ops", "text": text}, status=400)
                assert answer["error"].startswith(SURROGATE_REPLY)
        assert await app.runtime.store.list_runs() == []
    finally:
        await stop_app(app, grace=0.5, flush=0.5)


# -- every stored text is capped ----------------------------------------------------------------------

LOUD = {
    "shout": 'notify: "${{ inputs.text }}"',
    "ask": 'approval: {title: "${{ inputs.text }}", approvers: ["user:bob"]}',
    "spill": """run: ["python3", "-c", "import sys; sys.stderr.write('e' * 300_000); sys.exit(1)"]""",
}


def loud(step: str) -> str:
    return f"name: loud_{step}\ninputs:\n  text: {{type: string}}\nsteps:\n  {step}:\n    {LOUD[step]}\n"


async def stored_events(runtime: Runtime, run_id: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [(e.type, e.step_key, e.data) for e in await runtime.store.events_after(run_id, 0, limit=100_000)]


async def test_texts_over_their_caps_fail_their_step_and_no_event_grows_past_its_cap(
    make_runtime: Callable[..., Any],
) -> None:
    runtime: Runtime = await make_runtime()
    size = MAX_EVENT_BYTES + 1  # over the chat text cap, and the run_started event's inputs too
    text = "x" * size
    runs = {
        step: (await runtime.submit(workflow(loud(step)), {"text": text}, "alice")).run_id for step in LOUD
    }
    limit = f"characters; the limit is {MAX_CHAT_TEXT:,} (the chat text cap)"
    wanted = {
        "shout": f"the notify text is {size:,} {limit}",
        "ask": f"the approval's title is {size:,} {limit}",
    }
    for step, run_id in runs.items():
        assert (await finished(runtime, run_id)).status == "failed"
        [state] = await runtime.store.step_rows(run_id)
        assert state.error is not None
        if step in wanted:
            assert state.error.startswith(wanted[step]), state.error
        events = await stored_events(runtime, run_id)
        assert "notification" not in [t for t, _, _ in events]  # nothing was sent
        for type_, key, data in events:
            assert len(json.dumps(data)) <= MAX_EVENT_BYTES, (type_, key, len(json.dumps(data)))
        [started_event] = [d for t, _, d in events if t == "run_started"]
        assert f"an event keeps at most {MAX_EVENT_BYTES:,}" in started_event["cut"]  # its inputs were cut
    [spilled] = [d for t, k, d in await stored_events(runtime, runs["spill"]) if t == "step_failed"]
    # The command kept the last 64 KiB of stderr (its output cap); the event keeps its end.
    assert spilled["stderr"] == "[cut from 65,536 characters] …" + "e" * 2000 and "cut" in spilled


def test_the_outputs_of_a_run_with_many_big_steps_are_kept_within_their_cap() -> None:
    every = {f"s{i}": {"stdout": "o" * 200_000} for i in range(10)}
    kept = run_outputs_within_cap(every)
    assert len(json.dumps(kept)) <= MAX_RUN_OUTPUT_BYTES
    assert list(kept)[:5] == ["s0", "s1", "s2", "s3", "s4"]
    assert f"at most {MAX_RUN_OUTPUT_BYTES:,} characters of outputs (the run outputs cap)" in kept["_cut"]
    assert run_outputs_problem(every) is not None and "Keep less in 'outputs:'" in str(
        run_outputs_problem(every)
    )


async def test_a_lone_surrogate_in_a_slack_message_is_kept_as_a_replacement_character(
    harness: Callable[..., Awaitable[ConversationHarness]],
) -> None:
    h = await harness()
    h.llm.script(Text("Deploys are listed with /workflow list."))
    await h.dm("how do I \ud800 deploy?")  # Events API JSON carries it as the escape \ud800
    [reply] = await eventually(lambda: posts(h.fake, DM))
    assert reply["text"] == "Deploys are listed with /workflow list."
    assert await h.user_messages() == ["how do I \ufffd deploy?"]  # nothing typed is lost
