"""The ``action`` kind: real imports of real modules, sync and async actions, refusals and failures."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from engine.activities import action as action_kind
from engine.activities.action import ActionRefError, resolve_action
from engine.activities.base import ActivityContext, StepCall, StepFailure

TESTS_DIR = Path(__file__).parent  # plays the workflows directory: fixture_actions/ lives in it
CTX = ActivityContext(workflows_dir=TESTS_DIR)


def call(ref: str, with_: dict[str, Any] | None = None, **params: Any) -> StepCall:
    return StepCall(
        run_id="run-1",
        step_key="act",
        step_id="act",
        attempt=2,
        idempotency_key="run-1:act",
        kind="action",
        params={"ref": ref, "with": with_ or {}, **params},
        inputs={"env": "prod"},
    )


async def test_sync_action_gets_its_context_and_runs_in_a_thread() -> None:
    result = await action_kind.execute(call("fixture_actions.basic:greet", {"name": "ada"}), CTX)
    assert result == {
        "greeting": "hello ada",
        "inputs": {"env": "prod"},
        "run_id": "run-1",
        "step": "act",
        "attempt": 2,
        "key": "run-1:act",
        "in_main_thread": False,
    }


async def test_async_action() -> None:
    assert await action_kind.execute(call("fixture_actions.basic:double", {"n": 21}), CTX) == {"doubled": 42}


async def test_action_by_registered_name_and_fan_out_item() -> None:
    shipped = await action_kind.execute(call("fixture_actions.basic:ship", {"service": "api"}), CTX)
    assert shipped == {"shipped": "api"}
    fanned = await action_kind.execute(call("fixture_actions.basic:fan_item", item="eu", index=3), CTX)
    assert fanned == {"item": "eu", "index": 3}


async def test_a_sync_action_does_not_block_the_loop() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    result = await action_kind.execute(call("fixture_actions.basic:blocking", {"seconds": 0.3}), CTX)
    task.cancel()
    assert result == {"slept": True}
    assert ticks >= 2  # the loop kept running (about 30 ticks when idle); at most 1 if the action blocked it


@pytest.mark.parametrize(
    ("ref", "outputs"),
    [
        ("fixture_actions.basic:nothing", {}),
        ("fixture_actions.basic:a_list", {"value": [1, 2, 3]}),
        ("fixture_actions.basic:a_tuple_map", {"pair": [1, 2]}),
    ],
)
async def test_returned_value_shapes(ref: str, outputs: dict[str, Any]) -> None:
    assert await action_kind.execute(call(ref), CTX) == outputs


async def test_a_value_json_cannot_hold_fails_the_step() -> None:
    with pytest.raises(StepFailure) as failure:
        await action_kind.execute(call("fixture_actions.basic:a_set"), CTX)
    assert failure.value.kind == "action"
    assert "not JSON" in failure.value.message


async def test_os_system_is_refused() -> None:
    with pytest.raises(StepFailure) as failure:
        await action_kind.execute(call("os:system", {"command": "true"}), CTX)
    assert failure.value.kind == "action"
    assert failure.value.message.startswith("os:system is not a Switchboard action; only functions marked")


def test_an_undecorated_function_is_refused() -> None:
    with pytest.raises(ActionRefError, match="is not a Switchboard action"):
        resolve_action("fixture_actions.basic:undecorated", TESTS_DIR)


def test_missing_names_get_a_did_you_mean() -> None:
    with pytest.raises(ActionRefError, match="has no action 'gret'; did you mean 'greet'"):
        resolve_action("fixture_actions.basic:gret", TESTS_DIR)
    with pytest.raises(ActionRefError, match=r"no module 'fixture_actions\.nope'"):
        resolve_action("fixture_actions.nope:greet", TESTS_DIR)
    with pytest.raises(ActionRefError, match="not a 'module:function' reference"):
        resolve_action("fixture_actions.basic.greet", TESTS_DIR)


async def test_an_action_that_raises_fails_with_its_traceback() -> None:
    with pytest.raises(StepFailure) as failure:
        await action_kind.execute(call("fixture_actions.basic:boom", {"host": "db7"}), CTX)
    assert failure.value.kind == "action"
    assert failure.value.message == "RuntimeError: disk full on db7"
    trace = failure.value.result["traceback"]
    assert "fixture_actions/basic.py" in trace and "in boom" in trace
    assert trace.rstrip().endswith("RuntimeError: disk full on db7")
    assert "concurrent/futures" not in trace


async def test_sys_exit_in_an_action_fails_the_step_only() -> None:
    with pytest.raises(StepFailure, match="SystemExit: 3"):
        await action_kind.execute(call("fixture_actions.basic:bye"), CTX)


async def test_module_in_a_workflows_dir(tmp_path: Path) -> None:
    package = f"wf_{uuid.uuid4().hex[:8]}"  # unique: imported modules stay in sys.modules
    (tmp_path / package).mkdir()
    (tmp_path / package / "actions.py").write_text(
        "from engine.actions import action\n\n"
        "@action\n"
        "def lint(ctx):\n"
        "    return {'paths': ctx.params['paths'], 'count': len(ctx.params['paths'])}\n"
    )
    ctx = ActivityContext(workflows_dir=tmp_path)
    result = await action_kind.execute(call(f"{package}.actions:lint", {"paths": ["a.py", "b.py"]}), ctx)
    assert result == {"paths": ["a.py", "b.py"], "count": 2}
    assert resolve_action(f"{package}.actions:lint", tmp_path) is resolve_action(
        f"{package}.actions:lint", tmp_path
    )


async def test_an_import_error_inside_the_module_is_reported_as_such(tmp_path: Path) -> None:
    name = f"broken_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import no_such_dependency_xyz\n")
    with pytest.raises(
        StepFailure, match=r"importing '\w+' failed: No module named 'no_such_dependency_xyz'"
    ):
        await action_kind.execute(call(f"{name}:run"), ActivityContext(workflows_dir=tmp_path))
