"""One driver per run: a batch claim that raced with this process's own driver does not start another.

The claim pass lists the runs it drives, then claims in a statement of its own; a driver started
meanwhile (a click's wake loaded the run) is missing from that list, so the statement may take the run
again as "ours". If that driver then parks and gives the lease back before the claim pass adopts what it
took, the claim is stale: a second driver started from it found no lease at its first commit ("its lease
is held elsewhere"), which bench/scale.py saw about ten times a run. The real runtime, SQLite and
PostgreSQL, the claim statement called as the claim pass calls it, with the interleaving made by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.runtime.runtime import Runtime
from tests.helpers import eventually, status_is, workflow

PARKS = """
name: parks
steps:
  work: {run: ["sh", "-c", "while [ ! -f GATE ]; do sleep 0.05; done"]}
  ask: {needs: [work], approval: {title: "Ship?", approvers: ["user:carol"]}}
"""


async def test_a_stale_batch_claim_of_a_run_its_driver_just_parked_starts_no_second_driver(
    make_runtime: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gate = tmp_path / "gate"
    runtime: Runtime = await make_runtime()
    started = await runtime.submit(workflow(PARKS.replace("GATE", str(gate))), {}, started_by="bob")
    await status_is(runtime, started.run_id, "running")
    assert runtime.drivers_started == 1
    # A claim pass whose list of driven runs was taken before this run's driver started.
    now = runtime.clock()
    until = now + runtime.settings.lease_seconds
    [stale] = await runtime.store.claim_batch(runtime.owner, now, until, [], 8, driving=[])
    assert (stale.run_id, stale.was) == (started.run_id, runtime.owner)
    # The driver parks on the approval and gives the lease back before the pass adopts its claim.
    gate.write_text("go")
    await status_is(runtime, started.run_id, "waiting")
    await eventually(lambda: started.run_id not in runtime.live, message="the driver to park")

    assert not await runtime.adopt_claimed(stale)
    assert runtime.drivers_started == 1  # no second driver for the parked run
    row = await runtime.store.run_row(started.run_id)
    assert row is not None and row.lease_owner is None  # still parked, free for whoever gets its mail
    assert "lease is held elsewhere" not in caplog.text


async def test_a_batch_claim_overtaken_by_a_wake_that_drove_the_run_to_its_end_starts_no_second_driver(
    make_runtime: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The other order: the pass's statement takes the run first, then a wake loads it here (the lease
    is ours, so its claim succeeds) and that driver finishes the run before the pass adopts its claim."""
    gate = tmp_path / "gate"
    runtime: Runtime = await make_runtime()
    started = await runtime.submit(workflow(PARKS.replace("GATE", str(gate))), {}, started_by="bob")
    gate.write_text("go")
    await status_is(runtime, started.run_id, "waiting")
    await eventually(lambda: started.run_id not in runtime.live, message="the driver to park")
    drivers = runtime.drivers_started
    since = runtime.drivers_started  # the pass begins
    await runtime.store.post(started.run_id, "cancel", {"by": "bob", "reason": ""}, runtime.clock())
    now = runtime.clock()
    until = now + runtime.settings.lease_seconds
    [stale] = await runtime.store.claim_batch(runtime.owner, now, until, [], 8, driving=[])
    assert stale.run_id == started.run_id
    await runtime.wake(started.run_id)  # a wake loads it here and drives it to its end
    await status_is(runtime, started.run_id, "cancelled")
    await eventually(lambda: started.run_id not in runtime.live, message="the driver to end")
    assert runtime.drivers_started == drivers + 1

    assert not await runtime.adopt_claimed(stale, since)
    assert runtime.drivers_started == drivers + 1  # no second driver for the finished run
    assert "lease is held elsewhere" not in caplog.text
