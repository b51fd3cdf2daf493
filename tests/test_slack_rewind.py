"""The "Rewind to …" button of a failed run's status card, end to end on Slack: the real Bolt app,
signed requests, the fake Slack Web API; the run goes back to its checkpoint and carries on."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import eventually, finished, status_is, workflow
from tests.test_slack import Harness, button, ephemeral_texts, slack, started_run

__all__ = ["slack"]  # the fixture, shared with test_slack.py


def chain(log: Path, gate: Path) -> str:
    return f"""
name: chain
permissions: {{rollback: ["group:release-managers"]}}
steps:
  build: {{run: ["sh", "-c", "echo build >> {log}"], checkpoint: built}}
  deploy:
    needs: [build]
    run: ["sh", "-c", "echo deploy >> {log}"]
    compensate: {{run: ["sh", "-c", "echo undeploy >> {log}"]}}
  verify: {{needs: [deploy], run: ["test", "-e", "{gate}"]}}
"""


async def test_rewind_button_refuses_who_may_not_then_rewinds_to_success(
    slack: Harness, tmp_path: Path
) -> None:
    fake, log, gate = slack.fake, tmp_path / "log", tmp_path / "gate"
    workflow(chain(log, gate), slack.workflows)
    await slack.send.command("run chain", user="U0BOB")  # bob starts it; alice is a release manager
    run_id = await eventually(lambda: started_run(ephemeral_texts(fake)))
    assert (await finished(slack.app.runtime, run_id)).status == "failed"
    ts = (await eventually(lambda: fake.delivered("chat.postMessage")))[0].answer["ts"]

    def rewind_button() -> str | None:
        return button(fake.message("C0OPS", ts), "rewind.built")

    choice = await eventually(rewind_button, timeout=10)
    assert choice == f"sb:run:{run_id}:rewind.built"
    labels = [
        e["text"]["text"]
        for b in fake.message("C0OPS", ts)["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert "Rewind to built" in labels

    # Someone who is neither the starter, an admin nor named by permissions.rollback is told so.
    fake.add_user("U0CAROL", "carol")
    assert (await slack.send.click(choice, "C0OPS", ts, user="U0CAROL")).status == 200
    refusal = await eventually(lambda: [t for t in ephemeral_texts(fake) if "may not rewind" in t])
    assert "(the 'rollback' permission)" in refusal[0] and "group:release-managers" in refusal[0]
    assert (await slack.app.runtime.store.run_row(run_id)).status == "failed"

    gate.write_text("open")
    assert (await slack.send.click(choice, "C0OPS", ts, user="U0ALICE")).status == 200
    await eventually(lambda: [t for t in ephemeral_texts(fake) if t.startswith(f"Rewinding run {run_id}")])
    await status_is(slack.app.runtime, run_id, "succeeded")
    assert log.read_text().split() == ["build", "deploy", "undeploy", "deploy"]
    await eventually(lambda: "Succeeded" in fake.message("C0OPS", ts)["text"], timeout=10)
    assert button(fake.message("C0OPS", ts), "rewind.built") is None  # a succeeded run offers none
