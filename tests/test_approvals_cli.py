"""``switchboard approvals list|decide|audit`` through the real CLI: a process per command, on both databases.

Two runs of the example ``deploy_prod`` wait for 2 of release-managers or carol: one is approved, with a
self-approval, a non-approver and a late click refused on the way; the other is rejected. The audit
export then shows all of it, as JSON and CSV, filtered by run and by time.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import datetime
from pathlib import Path
from subprocess import Popen

import pytest

from bot.approvals.store import ApprovalStore
from bot.cli.audit import COLUMNS, audit_records, parse_since
from bot.errors import BadInput
from bot.storage.database import create_engine
from tests.test_cli import environment, finish, start, wait_for

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "workflows"


def decide(env: dict[str, str], approval_id: str, choice: str, user: str, *extra: str) -> Popen[str]:
    """Start ``approvals decide ID CHOICE --as USER [extra...]``."""
    return start(env, "approvals", "decide", approval_id, choice, "--as", user, *extra)


async def test_list_decide_and_audit(db_url: str) -> None:
    env = environment(db_url, EXAMPLES)
    runners = [
        start(env, "workflow", "run", "deploy_prod", "-i", f"service={service}", "--as", "dana")
        for service in ("api", "billing")
    ]
    engine = create_engine(db_url)
    try:
        store = ApprovalStore(engine, time.time)

        async def both_asked() -> bool:
            return len(await store.pending()) == 2

        await wait_for(both_asked)
        by_title = {a.title.split()[1]: a for a in await store.pending()}
        ship, stop = by_title["api"], by_title["billing"]

        listed, as_json, own, outsider, first = await finish(
            start(env, "approvals", "list"),
            start(env, "approvals", "list", "--json"),
            decide(env, ship.id[:6], "approve", "dana", "--group", "release-managers"),  # a prefix will do
            decide(env, ship.id, "approve", "erin"),
            decide(env, ship.id, "approve", "alice", "-m", "lgtm"),  # her console groups come with --as
        )
        assert listed.code == 0, listed.out
        for a in (ship, stop):
            line = f"{a.id}  run {a.run_id}  step approve_prod: {a.title}  [2 of group:release-managers, "
            assert line + "user:carol, expires " in listed.out, listed.out
        assert {a["id"]: a["required"] for a in json.loads(as_json.out)} == {ship.id: 2, stop.id: 2}

        assert own.code == 1 and "error: You started this run, so you cannot approve it" in own.out, own.out
        assert outsider.code == 1, outsider.out
        assert (
            "error: You are not an approver for this request (approvers: group:release-managers, user:carol)"
            in outsider.out
        )
        assert first.code == 0 and "Approved by @alice, 1 of 2" in first.out, first.out

        second, veto, *ran = await finish(
            decide(env, ship.id, "approve", "carol"),
            decide(env, stop.id, "reject", "carol", "-m", "not in the freeze"),
            *runners,
        )
        assert second.code == 0 and "Approved by @carol; the run continues" in second.out, second.out
        assert veto.code == 1, veto.out  # the decision was taken; the run it resumed then failed
        assert "Rejected by @carol; the run continues" in veto.out and "✗ run failed" in veto.out
        shipped, stopped = ran
        assert shipped.code == 0, shipped.out
        assert re.search(
            r"Deploy of api v1\.\d+\.0 to prod: succeeded \(approved by @alice, @carol\)", shipped.out
        )
        assert stopped.code == 1 and "failed (rejected by @carol)" in stopped.out, stopped.out
        assert await store.pending() == []

        [late] = await finish(decide(env, ship.id, "approve", "bob", "--group", "release-managers"))
        assert late.code == 1, late.out
        assert re.search(r"error: Already approved by @alice, @carol at \d\d:\d\d UTC", late.out), late.out

        stored = await audit_records(engine)  # to pick --since values: the first day, and carol's approval
        day, carol_at = stored[0]["at"][:10], next(r["at"] for r in stored if r["actor"] == "console:carol")
        everything, mine, mine_csv, since_carol, bad_date, no_run = await finish(
            start(env, "approvals", "audit", "--since", day),
            start(env, "approvals", "audit", "--run", ship.run_id[:6]),
            start(env, "approvals", "audit", "--run", ship.run_id, "--format", "csv"),
            start(env, "approvals", "audit", "--since", carol_at, "--format", "json"),
            start(env, "approvals", "audit", "--since", "last tuesday"),
            start(env, "approvals", "audit", "--run", "ffffffffffff"),
        )
        assert bad_date.code == 2 and "--since takes an ISO date (2026-11-20)" in bad_date.out, bad_date.out
        assert "got 'last tuesday'" in bad_date.out
        assert no_run.code == 1 and "No run 'ffffffffffff'" in no_run.out, no_run.out

        assert everything.code == 0, everything.out
        records = json.loads(everything.out)
        assert [r["at"] for r in records] == sorted(r["at"] for r in records)  # oldest first
        assert {r["run_id"] for r in records} == {ship.run_id, stop.run_id}
        assert mine.code == 0, mine.out
        trail = json.loads(mine.out)
        assert [r for r in records if r["run_id"] == ship.run_id] == trail
        assert (
            trail[0]["action"] == "requested"
            and trail[0]["actor"] == "console:dana"
            and trail[0]["source"] == "engine"
        )
        assert sorted(r["action"] for r in trail[1:4]) == ["approve", "denied", "denied"]
        assert [(r["actor"], r["action"]) for r in trail[4:]] == [
            ("console:carol", "approve"),
            ("console:bob", "late"),
        ]
        assert all(r["step_key"] == "approve_prod" and r["title"] == ship.title for r in trail)
        assert all(r["source"] == "cli" for r in trail[1:])
        [alice] = [r for r in trail if r["actor"] == "console:alice"]
        assert alice["actor_name"] == "@alice" and trail[0]["actor_name"] == "@dana"
        assert alice["detail"] == {"comment": "lgtm"}
        [denied] = [r for r in trail if r["actor"] == "console:erin"]
        assert denied["detail"]["why"].startswith("You are not an approver")
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["at"]) for r in trail)

        assert mine_csv.code == 0, mine_csv.out
        rows = list(csv.reader(io.StringIO(mine_csv.out)))
        assert tuple(rows[0]) == COLUMNS
        assert [int(r[0]) for r in rows[1:]] == [r["id"] for r in trail]
        assert [json.loads(r[-1]) for r in rows[1:]] == [r["detail"] for r in trail]

        assert since_carol.code == 0, since_carol.out
        assert [r["id"] for r in json.loads(since_carol.out)] == [
            r["id"] for r in records if r["at"] >= carol_at
        ]
        assert json.loads(since_carol.out)[0]["actor"] == "console:carol"
    finally:
        for proc in runners:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        await engine.dispose()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20", "2026-11-20T00:00:00+00:00"),
        ("2026-11-20T14:02", "2026-11-20T14:02:00+00:00"),
        ("2026-11-20 14:02:03Z", "2026-11-20T14:02:03+00:00"),
        ("2026-11-20T15:02:03+01:00", "2026-11-20T14:02:03+00:00"),
    ],
)
def test_since_reads_iso_dates_and_times_as_utc(text: str, expected: str) -> None:
    assert parse_since(text) == datetime.fromisoformat(expected).timestamp()


@pytest.mark.parametrize("text", ["yesterday", "20/11/2026", "2026-13-01", ""])
def test_since_refuses_anything_else_with_an_example(text: str) -> None:
    with pytest.raises(BadInput, match=r"--since takes an ISO date \(2026-11-20\)"):
        parse_since(text)


def test_no_code_path_updates_or_deletes_audit_records() -> None:
    writes = re.compile(
        r"approval_audit\s*\.\s*(update|delete)\s*\("
        r"|(update|delete)\(\s*approval_audit\b"
        r"|\b(UPDATE|DELETE\s+FROM)\s+\"?approval_audit\b",
        re.IGNORECASE,
    )
    assert writes.search("await conn.execute(approval_audit.delete().where(x))")  # the net catches
    assert writes.search("sa.update(approval_audit).values(actor='x')")
    sources = [p for folder in ("bot", "handlers", "engine") for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(sources) > 50
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sources
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if writes.search(line)
    ]
    assert found == [], "approval_audit is append-only:\n" + "\n".join(found)
