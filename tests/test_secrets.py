"""Secrets are never shown: ``validate`` refuses them where they would be displayed or transformed, and
every stored or sent text masks a secret's value and its common encodings.

The run test starts a real run whose commands print the secret in several encodings, feeds that output
into an approval title, a notify, outputs and a failure, then reads everything a person could see: the
events, the card rows, ``approvals list``, ``approvals audit`` and ``workflow status --json`` through the
real command line, and every row of every table of the database directly.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from bot.identity import Identity
from bot.runtime.catalog import Catalog
from bot.runtime.presence import install
from bot.runtime.runtime import Runtime
from bot.storage import redaction
from bot.storage.conversations.rows import Inbound
from bot.storage.conversations.store import ConversationStore
from bot.storage.conversations.tables import conversation_events, conversation_messages
from bot.storage.database import create_engine, migrate
from engine.core import Core
from engine.loader import WorkflowInvalid, load_text, parse_stored
from engine.masking import MASK, mask
from engine.signals import Notify, RequestApproval, Start, StartStep
from engine.state import RunState
from tests.helpers import finished, status_is, workflow
from tests.test_cli import cli, environment, start

SECRET = 's3cr3t/"Tok"+9~x'
"""A value whose encodings all differ: '/', '+' and '~' URL-encode, '"' JSON-escapes."""


def _forms(secret: str) -> dict[str, str]:
    raw = secret.encode()
    return {
        "raw": secret,
        "upper": secret.upper(),
        "lower": secret.lower(),
        "reversed": secret[::-1],
        "base64": base64.b64encode(raw).decode(),
        "base64 unpadded": base64.b64encode(raw).decode().rstrip("="),
        "base64 urlsafe": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "url-encoded": quote(secret, safe=""),
        "json-escaped": json.dumps(secret)[1:-1],
        "hex": raw.hex(),
    }


def _workflow(body: str) -> str:
    return (
        "name: leaky\nsecrets: [TOKEN, OTHER]\ninputs: {who: {type: string, default: me}}\n"
        + textwrap.dedent(body)
    )


def _errors(body: str) -> list[str]:
    with pytest.raises(WorkflowInvalid) as caught:
        load_text(_workflow(body), "leaky.yaml")
    return [str(e) for e in caught.value.errors]


REFUSED = {
    "approval title": (
        """
        steps:
          ask: {approval: {title: "Deploy with ${{ secrets.TOKEN }}?"}}
        """,
        "leaky.yaml:6:27: step 'ask', field 'approval.title': '${{ secrets.TOKEN }}' may not go here: "
        "this field is shown to people; a secret may go only in a command's env, an http url, headers or "
        "body, or an action's with:",
    ),
    "approval context": (
        """
        steps:
          ask:
            approval:
              title: Go?
              context: {token: "${{ secrets.TOKEN }}"}
        """,
        "leaky.yaml:9:24: step 'ask', field 'approval.context.token': '${{ secrets.TOKEN }}' may not go here",
    ),
    "description": (
        """
        steps:
          say: {description: "uses ${{ secrets.TOKEN }}", notify: hi}
        """,
        "leaky.yaml:6:22: step 'say', field 'description': '${{ secrets.TOKEN }}' may not go here: "
        "this field is shown to people",
    ),
    "notify text": (
        """
        steps:
          say: {notify: "token is ${{ secrets.TOKEN }}"}
        """,
        "leaky.yaml:6:17: step 'say', field 'notify': '${{ secrets.TOKEN }}' may not go here",
    ),
    "step outputs": (
        """
        steps:
          build:
            run: [make]
            outputs: {token: "${{ secrets.TOKEN }}"}
        """,
        "leaky.yaml:8:22: step 'build', field 'outputs.token': '${{ secrets.TOKEN }}' may not go here",
    ),
    "workflow outputs": (
        """
        steps:
          build: {run: [make]}
        outputs:
          token: "${{ secrets.OTHER }}"
        """,
        "leaky.yaml:8:10: field 'outputs.token': '${{ secrets.OTHER }}' may not go here",
    ),
    "program argument": (
        """
        steps:
          build: {run: [curl, -H, "Authorization: ${{ secrets.TOKEN }}"]}
        """,
        "leaky.yaml:6:27: step 'build', field 'run[2]': '${{ secrets.TOKEN }}' may not go here: program "
        "arguments are visible to every user of the machine; pass it through 'env' instead",
    ),
    "llm prompt": (
        """
        steps:
          think: {llm: {prompt: "use ${{ secrets.TOKEN }}"}}
        """,
        "leaky.yaml:6:25: step 'think', field 'llm.prompt': '${{ secrets.TOKEN }}' may not go here: what an "
        "llm step is given goes to the model",
    ),
    "sub-workflow input": (
        """
        steps:
          child: {workflow: other, with: {token: "${{ secrets.TOKEN }}"}}
        """,
        "leaky.yaml:6:42: step 'child', field 'with.token': '${{ secrets.TOKEN }}' may not go here: it "
        "becomes an input of the child run",
    ),
    "condition": (
        """
        steps:
          build: {run: [make], if: "secrets.TOKEN"}
        """,
        "leaky.yaml:6:28: step 'build', field 'if': '${{ secrets.TOKEN }}' may not go here: a condition on a "
        "secret reveals it",
    ),
    "env entry shown": (
        """
        env: {AUTH: "Bearer ${{ secrets.TOKEN }}"}
        steps:
          say: {notify: "auth: ${{ env.AUTH }}"}
        """,
        "leaky.yaml:7:17: step 'say', field 'notify': '${{ env.AUTH }}' may not go here",
    ),
    "format()": (
        """
        steps:
          build:
            run: [make]
            env: {T: "${{ format('{0}', secrets.TOKEN) }}"}
        """,
        "leaky.yaml:8:14: step 'build', field 'env.T': expression '${{ format('{0}', secrets.TOKEN) }}' "
        "passes secrets.TOKEN to format(); a secret may not be transformed: use it only whole, as "
        "'${{ secrets.NAME }}', in a command's env, an http url, headers or body, or an action's with:",
    ),
    "toJSON(secrets)": (
        """
        steps:
          call: {http: {url: "https://example.com", body: "${{ toJSON(secrets) }}"}}
        """,
        "leaky.yaml:6:51: step 'call', field 'http.body': expression '${{ toJSON(secrets) }}' reads the whole "
        "'secrets' context",
    ),
    "comparison": (
        """
        steps:
          build: {run: [make], if: "${{ secrets.TOKEN == 'abc' }}"}
        """,
        "leaky.yaml:6:28: step 'build', field 'if': expression '${{ secrets.TOKEN == 'abc' }}' compares "
        "secrets.TOKEN with ==",
    ),
    "indexing": (
        """
        steps:
          build: {run: [make], env: {T: "${{ secrets.TOKEN[0] }}"}}
        """,
        "leaky.yaml:6:33: step 'build', field 'env.T': expression '${{ secrets.TOKEN[0] }}' indexes into "
        "secrets.TOKEN",
    ),
    "a key chosen at run time": (
        """
        steps:
          build: {run: [make], env: {T: "${{ secrets[inputs.who] }}"}}
        """,
        "leaky.yaml:6:33: step 'build', field 'env.T': expression '${{ secrets[inputs.who] }}' picks a secret "
        "chosen while the run runs",
    ),
    "&&": (
        """
        steps:
          build: {run: [make], env: {T: "${{ secrets.TOKEN && 'set' }}"}}
        """,
        "leaky.yaml:6:33: step 'build', field 'env.T': expression '${{ secrets.TOKEN && 'set' }}' combines "
        "secrets.TOKEN with &&",
    ),
    "the whole env holding a secret": (
        """
        env: {AUTH: "${{ secrets.TOKEN }}"}
        steps:
          say: {notify: "${{ toJSON(env) }}"}
        """,
        "leaky.yaml:7:17: step 'say', field 'notify': expression '${{ toJSON(env) }}' reads the whole 'env' "
        "context, which holds a secret in env.AUTH",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_validate_refuses_a_secret_shown_or_transformed(case: str) -> None:
    body, expected = REFUSED[case]
    errors = _errors(body)
    assert any(e.startswith(expected) for e in errors), "\n".join(errors)


def test_secrets_go_where_they_are_not_shown() -> None:
    text = _workflow(
        """
        env: {AUTH: "Bearer ${{ secrets.TOKEN }}"}
        steps:
          build:
            run: [sh, -c, 'deploy --token "$T"']
            env: {T: "${{ secrets.TOKEN }}", H: "${{ env.AUTH }}", WHO: "${{ inputs.who }}"}
            compensate: {run: [undo], env: {T: "${{ secrets.TOKEN }}"}}
          call:
            http:
              method: POST
              url: "https://example.com/hook?key=${{ secrets.OTHER }}"
              headers: {Authorization: "${{ env.AUTH }}"}
              json: {nested: {token: "${{ secrets.TOKEN }}"}, who: "${{ inputs.who }}"}
          act: {action: "examples.actions:lint", with: {token: "${{ secrets.TOKEN }}"}}
          say: {needs: [build], notify: "built for ${{ inputs.who }}: ${{ steps.build.outputs.stdout }}"}
        """
    )
    loaded = load_text(text, "leaky.yaml")
    assert loaded.spec.secrets == ["TOKEN", "OTHER"]


async def test_validate_and_run_refuse_it_on_the_command_line(workflows_dir: Path, tmp_path: Path) -> None:
    (workflows_dir / "leaky.yaml").write_text(
        _workflow("""
        steps:
          ask: {approval: {title: "Deploy with ${{ secrets.TOKEN }}?"}}
        """)
    )
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", workflows_dir, TOKEN=SECRET)
    validated = await cli(env, "workflow", "validate", str(workflows_dir / "leaky.yaml"))
    ran = await cli(env, "workflow", "run", "leaky")
    where = f"{workflows_dir / 'leaky.yaml'}:6:27: step 'ask', field 'approval.title'"
    for result in (validated, ran):
        assert result.code != 0, result.out
        assert where in result.out, result.out
        assert SECRET not in result.out


def test_every_encoding_is_masked() -> None:
    text = "\n".join(f"{name}={form}" for name, form in _forms(SECRET).items())
    basic = base64.b64encode(f"deploy:{SECRET}".encode()).decode()  # the secret inside a longer encoding
    masked = mask(f"{text}\nbasic={basic}\nplain words stay", [SECRET])
    for name in _forms(SECRET):
        assert f"{name}={MASK}" in masked, masked
    assert base64.b64encode(b"deploy:").decode()[:8] in masked.split("basic=")[1]
    assert masked.split("basic=")[1].count(MASK) == 1
    assert masked.endswith("plain words stay")
    assert mask({"k": [SECRET, 3, None]}, [SECRET]) == {"k": [MASK, 3, None]}


def test_short_secrets_keep_ordinary_text() -> None:
    # A short value's hex or base64 would match everyday text, so only the value itself is masked.
    assert mask("pin 1234, hex 31323334", ["1234"]) == f"pin {MASK}, hex 31323334"


PRINTS = """
import base64, json, os, sys, urllib.parse
t = os.environ["T"]
b = t.encode()
print("raw", t, "upper", t.upper(), "json", json.dumps({"t": t}))
print("b64", base64.b64encode(b).decode(), "url", urllib.parse.quote(t, safe=""))
print("safe", base64.urlsafe_b64encode(b).decode().rstrip("="), "hex", b.hex())
print("basic", base64.b64encode(b"ci:" + b).decode(), "reversed", t[::-1])
"""

RUN = f"""
name: leaky
secrets: [DEPLOY_TOKEN]
steps:
  leak:
    run: ["python3", "-c", {json.dumps(PRINTS)}]
    env: {{T: "${{{{ secrets.DEPLOY_TOKEN }}}}"}}
    outputs: {{said: "${{{{ result.stdout }}}}"}}
  ask:
    needs: [leak]
    approval:
      title: "Ship it? ${{{{ steps.leak.outputs.said }}}}"
      description: "${{{{ steps.leak.outputs.said }}}}"
      context: {{printed: "${{{{ steps.leak.outputs.said }}}}"}}
  complain:
    needs: [ask]
    run: ["python3", "-c", "import os, sys; sys.stderr.write('bad ' + os.environ['T'].lower()); sys.exit(3)"]
    env: {{T: "${{{{ secrets.DEPLOY_TOKEN }}}}"}}
    continue_on_error: true
  say:
    needs: [complain]
    trigger: all_done
    notify: "done: ${{{{ steps.leak.outputs.said }}}}"
"""


async def test_a_run_that_prints_the_secret_shows_only_masks(
    runtime: Runtime, db_url: str, workflows_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", SECRET)
    install(runtime)  # status and approval cards, as the bot and the CLI have them
    origin = {"platform": "console", "channel": "#ops", "thread": None, "channel_name": "ops"}
    started = await runtime.submit(workflow(RUN), {}, "alice", meta={"origin": origin})
    await status_is(runtime, started.run_id, "waiting")
    env = environment(db_url, workflows_dir)
    listed, waiting = await _outputs(
        env, ("approvals", "list", "--json"), ("workflow", "status", started.run_id, "--json")
    )
    [request] = await runtime.approvals.pending()
    assert request.title.startswith("Ship it? raw ***"), request.title
    await runtime.decide(request.id, "bob", "approve", "fine", background=False)
    row = await finished(runtime, started.run_id)
    assert row.status == "succeeded", row.error
    audit, status = await _outputs(
        env, ("approvals", "audit", "--run", started.run_id), ("workflow", "status", started.run_id, "--json")
    )
    events = [e.data for e in await runtime.store.events_after(started.run_id, 0, limit=10_000)]
    shown = {"approvals list": listed, "status while waiting": waiting, "audit": audit, "status": status}
    shown["events"] = json.dumps(events, ensure_ascii=False)
    shown["database"] = json.dumps(await _every_row(runtime), ensure_ascii=False, default=str)
    for where, text in shown.items():
        _assert_masked(where, text)
    assert "bad ***" in shown["database"]  # the stderr tail, the failure and its thread reply
    assert "raw *** upper ***" in shown["database"]  # the approval title, its card and the outputs
    cards = {c["key"]: json.dumps(c, default=str) for c in await _rows(runtime, "chat_cards")}
    assert {k.split(":")[0] for k in cards} >= {"run", "approval"}, list(cards)
    assert all(MASK in card for card in cards.values()), cards


async def _outputs(env: dict[str, str], *commands: tuple[str, ...]) -> list[str]:
    from tests.test_cli import finish

    results = await finish(*(start(env, *args) for args in commands))
    for args, result in zip(commands, results, strict=True):
        assert result.code == 0, (args, result.out)
    return [r.out for r in results]


def _assert_masked(where: str, text: str) -> None:
    folded = text.lower()
    for name, form in _forms(SECRET).items():
        found = form in text or (name in ("raw", "url-encoded", "json-escaped") and form.lower() in folded)
        assert not found, f"{where} shows the secret ({name}): {text[:2000]}"
    basic = base64.b64encode(f"ci:{SECRET}".encode()).decode()
    assert basic[4:-4] not in text, f"{where} shows the secret inside a base64 Basic credential"


async def _every_row(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    engine = runtime.store.engine
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    return {name: await _rows(runtime, name) for name in names}


async def _rows(runtime: Runtime, table: str) -> list[dict[str, Any]]:
    async with runtime.store.engine.connect() as conn:
        result = await conn.execute(sa.text(f'SELECT * FROM "{table}"'))  # names from the schema
        return [dict(r._mapping) for r in result]


PASTED = "pasted-Secret/42+zz"
"""The value a person pastes into the assistant's chat, known to the process only as a workflow's secret."""


async def test_a_transcript_is_masked_before_it_is_stored(
    db_url: str, workflows_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASTED_TOKEN", PASTED)
    (workflows_dir / "uses.yaml").write_text(
        'name: uses\nsecrets: [PASTED_TOKEN]\nsteps:\n  go: {run: [deploy], env: {T: "${{ secrets.PASTED_TOKEN }}"}}\n'
    )
    assert [w.spec.name for w in Catalog(workflows_dir).workflows()] == ["uses"]  # listing reads its secrets
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        store = ConversationStore(engine)
        who = Identity("console", "console", "alice", "alice")
        said = "\n".join(f"{name}: {form}" for name, form in _forms(PASTED).items())
        conv, _ = await store.open_for(Inbound(who, "console", "#help", said), 1.0)
        async with engine.begin() as conn:
            await store.add_message(conn, conv.id, "user", f"my token is {said}", 1.0, author=who)
            await store.event(conn, conv.id, 1.0, "alice", "note", None, None, {"said": said, "n": [PASTED]})
        async with engine.connect() as conn:
            messages = (await conn.execute(sa.select(conversation_messages.c.text))).scalars().all()
            details = (await conn.execute(sa.select(conversation_events.c.detail))).scalars().all()
    finally:
        await engine.dispose()
    assert messages == [f"my token is {_masked_forms()}"]
    assert {"said": _masked_forms(), "n": [MASK]} in details, details


def _masked_forms() -> str:
    return "\n".join(f"{name}: {MASK}" for name in _forms(PASTED))


def test_the_log_masks_a_secret_in_a_message_and_a_traceback() -> None:
    value = "logged-Secret-77/x"
    redaction.remember([value])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(redaction.LogMask())
    log = logging.getLogger("tests.secrets")
    log.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"bad token {base64.b64encode(value.encode()).decode()}")
        except RuntimeError:
            log.exception("action failed with %s", value.upper())
    finally:
        log.removeHandler(handler)
    written = stream.getvalue()
    assert "action failed with ***" in written
    assert "RuntimeError: bad token ***" in written
    assert value.lower() not in written.lower()


def test_a_short_secret_does_not_rewrite_every_row() -> None:
    redaction.remember(["ing"])  # an environment variable set to a placeholder
    hide = redaction.known()
    assert hide is None or hide.text("running, waiting") == "running, waiting"


def test_a_stored_version_from_before_the_check_still_masks_what_it_shows() -> None:
    # A run pinned to a version stored before `validate` refused this: the core masks what it sends.
    spec = parse_stored(
        """
name: old
secrets: [TOKEN]
steps:
  ask: {approval: {title: "Use ${{ secrets.TOKEN }}?", context: {t: "${{ secrets.TOKEN }}"}}}
  say: {notify: "${{ secrets.TOKEN }} again"}
  child: {workflow: other, with: {t: "${{ secrets.TOKEN }}"}}
""",
        "old.yaml",
    )
    core = Core(RunState("r1", spec, {}, secrets={"TOKEN": SECRET}))
    decision = core.advance(Start(), 1.0)
    [asked] = [e for e in decision.effects if isinstance(e, RequestApproval)]
    [said] = [e for e in decision.effects if isinstance(e, Notify)]
    [child] = [e for e in decision.effects if isinstance(e, StartStep) and e.kind == "workflow"]
    assert (asked.title, asked.context, said.text) == (f"Use {MASK}?", {"t": MASK}, f"{MASK} again")
    assert child.params["with"] == {"t": MASK}
    assert SECRET not in repr(decision.events)
