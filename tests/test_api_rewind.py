"""``POST /api/v1/runs/{id}/rewind`` and the run view's undone steps and rerun link, on the real app."""

from __future__ import annotations

from pathlib import Path

from bot.process import App
from tests.api_client import call, token
from tests.helpers import finished, status_is
from tests.test_api import app, problem

__all__ = ["app"]  # the fixture, shared with test_api.py

CHAIN = """
name: chain
permissions: {rollback: ["group:ops"]}
steps:
  build: {run: ["echo", "v1"], checkpoint: built}
  deploy: {needs: [build], run: ["echo", "deployed"], compensate: {run: ["echo", "undeployed"]}}
  verify: {needs: [deploy], run: ["test", "-e", "GATE"]}
"""


async def test_rewind_through_the_api_shows_undone_steps(
    app: App, workflows_dir: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    (workflows_dir / "chain.yaml").write_text(CHAIN.replace("GATE", str(gate)))
    alice = await token(app, "alice", "runs:write,runs:read", "alice")
    erin = await token(app, "erin", "runs:write,runs:read", "erin")
    run_id = (await call(app, "POST", "/api/v1/runs", alice, {"workflow": "chain"})).body["id"]
    assert (await finished(app.runtime, run_id)).status == "failed"

    refused = await call(app, "POST", f"/api/v1/runs/{run_id}/rewind", erin, {"to": "built"})
    problem(refused, 403, "not-permitted", "You may not rewind runs of chain (the 'rollback' permission)")
    unknown = await call(app, "POST", f"/api/v1/runs/{run_id}/rewind", alice, {"to": "nowhere"})
    problem(unknown, 409, "conflict", "no checkpoint or step is called 'nowhere' (checkpoints: built)")
    problem(await call(app, "POST", f"/api/v1/runs/{run_id}/rewind", alice, {}), 422, "request-invalid")

    rolled = await call(app, "POST", f"/api/v1/runs/{run_id}/rollback", alice, {"to": "build"})
    assert rolled.status == 200
    await status_is(app.runtime, run_id, "compensated")
    detail = (await call(app, "GET", f"/api/v1/runs/{run_id}", alice)).body
    assert {s["key"]: s["undone"] for s in detail["steps"]} == {
        "build": False,
        "deploy": True,
        "verify": False,
    }

    gate.write_text("open")
    done = await call(app, "POST", f"/api/v1/runs/{run_id}/rewind", alice, {"to": "built"})
    assert done.status == 200 and done.body["message"].startswith(f"Rewinding run {run_id} to built")
    await status_is(app.runtime, run_id, "succeeded")
    detail = (await call(app, "GET", f"/api/v1/runs/{run_id}", alice)).body
    assert not any(s["undone"] for s in detail["steps"]) and detail["rerun_of"] is None
    types = [e["type"] for e in detail["events"]]
    assert "rewind_requested" in types and "run_rewound" in types
