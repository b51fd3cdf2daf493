"""``POST /hooks/NAME``: a signed webhook starts the workflow whose ``on: webhook`` has that name.

The body is read up to MAX_BODY, its signature checked against the secret in the hook's ``secret_env``,
its JSON mapped to inputs by the hook's expressions (``event`` is the payload), and the delivery id recorded
(a replay is refused) before the run is submitted. Every refusal is problem+json: 404 unknown hook, 413 too
large, 401 bad signature, 400 not JSON, 422 inputs that do not fit, 409 a replay, 503 no secret set.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from bot.errors import log_unexpected
from bot.runtime.catalog import Catalog
from bot.runtime.runtime import Runtime
from bot.runtime.starts import new_run_id
from bot.storage.action_log import record_action
from bot.storage.hook_deliveries import forget_delivery, record_delivery, retake_delivery
from bot.triggers.problems import problem
from bot.triggers.signatures import (
    BadSecret,
    BadSignature,
    bearer_delivery,
    github_delivery,
    standard_delivery,
)
from engine.expressions import ExpressionError, render
from engine.inputs import InputError, resolve_inputs
from engine.loader import LoadedWorkflow
from engine.trigger_spec import origin

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # GitHub caps its payloads at 25 MB, but a run's inputs are small; 1 MiB is plenty
KEEP_SEEN = 30 * 86400.0  # delivery ids are remembered this long (GitHub may redeliver an old delivery)
STALE = (
    30.0  # a recorded delivery whose run is still not stored after this long failed: a retry may retake it
)


@dataclass
class Hooks:
    """The webhook routes, reading workflows from ``catalog`` and starting runs on ``runtime``."""

    runtime: Runtime
    catalog: Catalog

    def attach(self, app: web.Application) -> None:
        """Add ``POST /hooks/{name}`` to the server."""
        app.router.add_post("/hooks/{name}", self.receive)

    def find(self, name: str) -> LoadedWorkflow | None:
        """The workflow whose webhook is called ``name`` (the first by workflow name, if two claim it)."""
        found = [w for w in self.catalog.workflows() if w.spec.on.webhook and w.spec.on.webhook.name == name]
        if len(found) > 1:
            log.warning("hook %s is declared by %s; using %s", name, [w.path for w in found], found[0].path)
        return found[0] if found else None

    async def receive(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            return await self._receive(request, name)
        except sa.exc.DBAPIError:
            log.exception("webhook %s: the database did not answer", name)
            detail = "Switchboard's database did not answer; nothing was started. Send the delivery again."
            return problem(503, "unavailable", detail)
        except Exception:
            found = log_unexpected(log, "webhook %s failed", name)
            return problem(500, "unexpected", found.message)

    async def _receive(self, request: web.Request, name: str) -> web.Response:
        loaded = self.find(name)
        if loaded is None or loaded.spec.on.webhook is None:
            return problem(404, "unknown-hook", f"No workflow declares the webhook '{name}'.")
        hook = loaded.spec.on.webhook
        body = await _read(request)
        if body is None:
            return problem(413, "too-large", f"The body is larger than {MAX_BODY:,} bytes.")
        secret = os.environ.get(hook.secret_env, "")
        if not secret:
            log.error(
                "webhook %s: its secret is not set; set the environment variable %s", name, hook.secret_env
            )
            return problem(
                503, "not-configured", f"The hook '{name}' has no secret configured on this server."
            )
        try:
            if hook.signature == "github":
                delivery = github_delivery(secret, body, request.headers)
            elif hook.signature == "bearer":
                delivery = bearer_delivery(secret, body, request.headers)
            else:
                delivery = standard_delivery(secret, body, request.headers, self.runtime.clock())
        except BadSignature as exc:
            return problem(401, "bad-signature", str(exc))
        except BadSecret as exc:
            log.error("webhook %s: the secret in %s cannot be used: %s", name, hook.secret_env, exc)
            return problem(503, "not-configured", f"The hook '{name}' has a secret this server cannot use.")
        try:
            event = json.loads(body) if body.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return problem(400, "not-json", "The body is not JSON.")
        except RecursionError:
            return problem(400, "not-json", "The body's JSON nests too deeply to read.")
        try:
            rendered = render(dict(hook.inputs), {"event": event})
            # A field the payload lacks is null: left out, so a default applies or 'required' is said.
            raw = {k: v for k, v in rendered.items() if v is not None}
            resolve_inputs(loaded.spec, raw)
        except ExpressionError as exc:
            return problem(422, "bad-inputs", f"The payload does not give the inputs: {exc}")
        except InputError as exc:
            return problem(422, "bad-inputs", f"Nothing started. {exc}", errors=exc.problems)
        return await self._start(loaded, name, delivery, raw)

    async def _start(
        self, loaded: LoadedWorkflow, name: str, delivery: str, raw: dict[str, Any]
    ) -> web.Response:
        rt = self.runtime
        run_id = new_run_id()
        now = rt.clock()
        seen = await record_delivery(rt.store.engine, name, delivery, run_id, now, KEEP_SEEN)
        if (
            seen is not None
            and now - seen.received_at > STALE
            and (seen.run_id is None or await rt.store.run_row(seen.run_id) is None)
            and await retake_delivery(rt.store.engine, name, delivery, seen.run_id, run_id, now)
        ):
            seen = None  # the first try recorded the delivery but never stored its run
        if seen is not None:
            started = f" (it started run {seen.run_id})" if seen.run_id else ""
            return problem(
                409, "replay", f"Delivery {delivery} was already received{started}.", run_id=seen.run_id
            )
        meta: dict[str, Any] = {"source": "webhook", "hook": name, "delivery": delivery}
        place = origin(loaded.spec.on.webhook.channel if loaded.spec.on.webhook else None)
        if place is not None:
            meta["origin"] = place  # its status card and thread go there
        try:
            await rt.submit(loaded, raw, started_by=f"webhook:{name}", meta=meta, run_id=run_id)
        except BaseException:
            await forget_delivery(rt.store.engine, name, delivery)  # the sender's retry may try again
            raise
        await _audit(rt, name, delivery, loaded.spec.name, run_id)
        log.info("webhook %s (delivery %s) started run %s of %s", name, delivery, run_id, loaded.spec.name)
        body = {"run_id": run_id, "workflow": loaded.spec.name, "delivery": delivery}
        return web.json_response(body, status=202)


async def _read(request: web.Request) -> bytes | None:
    """The body, or None past MAX_BODY (read no further than that)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)


async def _audit(rt: Runtime, name: str, delivery: str, workflow: str, run_id: str) -> None:
    """The action log's row for the start: source ``webhook``, the hook as the actor."""
    row = {
        "at": rt.clock(),
        "actor": f"webhook:{name}",
        "identity": {
            "platform": "webhook",
            "workspace": "hooks",
            "user_id": name,
            "name": name,
            "groups": [],
        },
        "place": {"platform": "webhook", "channel": name, "thread": None, "channel_name": None},
        "kind": "webhook",
        "detail": {"source": "webhook", "hook": name, "delivery": delivery, "workflow": workflow},
        "outcome": "ok",
        "run_id": run_id,
    }
    try:
        await record_action(rt.store.journal, row)
    except Exception:
        log.exception("could not record webhook %s's run %s in the action log", name, run_id)
