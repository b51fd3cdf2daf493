"""`switchboard workflow rewind` and `workflow rerun` as real processes on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bot.storage.database import create_engine
from bot.storage.runs import RunStore
from tests.test_cli import cli, environment, run_id


def chain(log: Path, gate: Path) -> str:
    def echo(name: str) -> str:
        return f'["sh", "-c", "echo {name} >> {log}"]'

    return f"""
name: chain
permissions: {{rollback: ["group:ops"]}}
steps:
  build: {{run: {echo("build")}, checkpoint: built}}
  deploy: {{needs: [build], run: {echo("deploy")}, compensate: {{run: {echo("undeploy")}}}}}
  verify: {{needs: [deploy], run: ["test", "-e", "{gate}"]}}
"""


async def test_rewind_and_rerun_from_the_cli(db_url: str, workflows_dir: Path, tmp_path: Path) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    (workflows_dir / "chain.yaml").write_text(chain(log, gate))
    env = environment(db_url, workflows_dir)
    first = await cli(env, "workflow", "run", "chain", "--as", "alice")
    assert first.code == 1, first.out
    rid = run_id(first.out)
    assert "⚑ build" in first.out and "checkpoint built saved" in first.out

    refused = await cli(env, "workflow", "rewind", rid, "--to", "built", "--as", "bob")
    assert refused.code != 0
    assert "You may not rewind runs of chain (the 'rollback' permission)" in refused.out, refused.out
    assert "group:ops" in refused.out
    unknown = await cli(env, "workflow", "rewind", rid, "--to", "nowhere", "--as", "alice")
    assert unknown.code != 0
    assert "no checkpoint or step is called 'nowhere' (checkpoints: built)" in unknown.out, unknown.out

    log.write_text("")
    gate.write_text("open")
    rewound = await cli(env, "workflow", "rewind", rid, "--to", "built", "--as", "bob", "--group", "ops")
    assert rewound.code == 0, rewound.out
    assert "rewound to built: undid deploy, verify; going on from there" in rewound.out
    assert "✓ run succeeded" in rewound.out
    assert log.read_text().split() == ["undeploy", "deploy"]

    status = await cli(env, "workflow", "status", rid)
    assert re.search(r"^  deploy +succeeded", status.out, re.MULTILINE), status.out
    rolled = await cli(env, "workflow", "rollback", rid, "--to", "build")
    assert rolled.code == 0, rolled.out  # rollback after a rewind still ends compensated
    status = await cli(env, "workflow", "status", rid)
    assert re.search(r"^  deploy +↺ undone", status.out, re.MULTILINE), status.out

    log.write_text("")
    again = await cli(env, "workflow", "rerun", rid, "--from", "verify", "--as", "alice")
    assert again.code == 0, again.out
    assert f"rerun of run {rid} from step verify" in again.out
    # build is reused; deploy was rolled back in that run, so it is not reused but runs again.
    assert log.read_text().split() == ["deploy"]
    new_id = run_id(again.out)
    shown = json.loads((await cli(env, "workflow", "status", new_id, "--json")).out)
    assert shown["run"]["meta"]["rerun_of"] == rid
    assert {s["key"]: s["compensation"] for s in shown["steps"]}["build"] == "reused"
    status = await cli(env, "workflow", "status", new_id)
    assert f"rerun of run {rid} from step verify" in status.out
    assert re.search(r"^  build +succeeded .*reused", status.out, re.MULTILINE), status.out

    engine = create_engine(db_url)
    try:
        types = [e.type for e in await RunStore(engine).events_after(new_id, 0)]
    finally:
        await engine.dispose()
    assert types.count("step_reused") == 1 and types.count("step_started") == 2

    bad = await cli(env, "workflow", "rerun", rid, "--from", "nope", "--as", "alice")
    assert bad.code != 0 and "has no step 'nope'; its steps are build, deploy, verify" in bad.out
