"""The runner's loop: register, keep its leases alive, take jobs while it has room, run them, report.

Each job runs through ``engine.activities`` exactly as a local step does: the same argv rules and env,
its own process group bound to this process (a runner killed with -9 takes its programs with it), the
server's kill grace and output cap, and the step's timeout. A job the server says to stop (the run was
cancelled, or the lease was lost) is cancelled here: SIGTERM to its group, SIGKILL after the grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.runner.client import Api
from bot.runner.output import OutputStream
from engine.activities.base import ActivityContext, StepCall, StepFailure
from engine.activities.registry import activity
from engine.durations import format_duration

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted"  # the failure kind of a job handed back by a runner that is stopping
REPORT_WAIT = 5.0  # seconds a stopping runner waits to hand a job back


@dataclass(frozen=True)
class Options:
    url: str
    token: str
    labels: tuple[str, ...]
    concurrency: int
    name: str
    host: str
    version: str
    workflows_dir: Path


class Runner:
    """One ``switchboard runner`` process."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.runner_id = ""
        self.lease = 15.0
        self.room = asyncio.Semaphore(options.concurrency)
        self.jobs: dict[str, asyncio.Task[None]] = {}
        self.gone: set[str] = set()  # jobs whose lease was lost: their end is not reported
        self.api: Api | None = None
        self.closing = False  # set on SIGTERM: jobs stopped now are handed back, not failed

    async def serve(self) -> None:
        """Run until cancelled (SIGTERM) or refused (``Refused`` propagates)."""
        async with aiohttp.ClientSession() as session:
            self.api = Api(self.options.url, self.options.token, session)
            await self._register()
            beat = asyncio.create_task(self._heartbeats(), name="heartbeats")
            take = asyncio.create_task(self._take(), name="take")
            try:
                # Either ends only by an error (a revoked token, say): the other must not go on without it.
                done, _ = await asyncio.wait({beat, take}, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            finally:
                self.closing = True
                beat.cancel()
                take.cancel()
                for task in list(self.jobs.values()):
                    task.cancel()  # each stops its program group before it ends
                await asyncio.gather(beat, take, *self.jobs.values(), return_exceptions=True)

    async def _register(self) -> None:
        assert self.api is not None
        o = self.options
        body = {
            "name": o.name,
            "labels": list(o.labels),
            "version": o.version,
            "host": o.host,
            "concurrency": o.concurrency,
        }
        status, data = await self.api.call("/register", body)
        if status != 200:
            raise RuntimeError(f"registering failed ({status}): {data}")
        self.runner_id, self.lease = data["runner_id"], float(data["lease_seconds"])
        self.api.backoff_max = min(self.api.backoff_max, self.lease / 3)
        log.info(
            "runner %s registered as %s for labels %s (concurrency %d, lease %ss)",
            o.name,
            self.runner_id,
            ",".join(o.labels),
            o.concurrency,
            self.lease,
        )

    async def _take(self) -> None:
        assert self.api is not None
        while True:
            await self.room.acquire()
            try:
                status, data = await self.api.call(f"/{self.runner_id}/next", {"wait": 20.0}, wait=20.0)
            except BaseException:
                self.room.release()
                raise
            if status == 404:  # the server forgot this registration (a new database): register anew
                self.room.release()
                await self._register()
                continue
            job = data.get("job") if status == 200 else None
            if not job:
                self.room.release()
                continue
            task = asyncio.create_task(self._job(job), name=f"job-{job['id']}")
            self.jobs[job["id"]] = task

    async def _heartbeats(self) -> None:
        assert self.api is not None
        while True:
            await asyncio.sleep(self.lease / 3)
            status, data = await self.api.call(f"/{self.runner_id}/heartbeat", {"jobs": list(self.jobs)})
            if status != 200:
                continue
            self.gone.update(data.get("gone", []))
            for job_id in data.get("stop", []):
                task = self.jobs.get(job_id)
                if task is not None:
                    why = "its lease was lost" if job_id in self.gone else "the run cancelled it"
                    log.warning("stopping job %s: %s", job_id, why)
                    task.cancel()

    async def _job(self, job: dict[str, Any]) -> None:
        assert self.api is not None
        job_id = job["id"]
        stream = OutputStream(self.api, f"/{self.runner_id}/jobs/{job_id}/output")
        log.info(
            "job %s: run %s step %s attempt %s (%s)",
            job_id,
            job["run_id"],
            job["step"],
            job["attempt"],
            job["kind"],
        )
        try:
            try:
                outcome = await self._execute(job, stream)
            except asyncio.CancelledError:
                if job_id in self.gone:
                    raise
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()  # handled: the report below must not be cancelled too
                outcome = {"ok": False, "kind": "action", "message": "cancelled", "result": {}}
                if self.closing:  # the step did not fail: its runner stopped; on_interrupt decides
                    stopped = f"runner {self.options.name} stopped"
                    outcome = {"ok": False, "kind": INTERRUPTED, "message": stopped, "result": {}}
            finally:
                await stream.close()
            if job_id in self.gone:
                return
            report = self.api.call(f"/{self.runner_id}/jobs/{job_id}/result", outcome)
            try:  # while stopping, a server that does not answer soon lets the lease lapse instead
                status, data = await asyncio.wait_for(report, REPORT_WAIT if self.closing else None)
            except TimeoutError:
                log.warning("job %s: the server did not take its hand-back; its lease lapses", job_id)
                return
            if status != 200:
                log.warning("job %s: its result was not taken (%s): %s", job_id, status, data.get("detail"))
            elif outcome.get("kind") == INTERRUPTED:
                log.warning(
                    "job %s handed back: this runner is stopping (its step follows on_interrupt)", job_id
                )
            else:
                log.info(
                    "job %s: %s", job_id, "succeeded" if outcome["ok"] else f"failed: {outcome['message']}"
                )
        except asyncio.CancelledError:
            log.warning("job %s stopped; its lease was lost, so nothing is reported", job_id)
        finally:
            self.jobs.pop(job_id, None)
            self.gone.discard(job_id)
            self.room.release()

    async def _execute(self, job: dict[str, Any], stream: OutputStream) -> dict[str, Any]:
        call = StepCall(
            run_id=job["run_id"],
            step_key=job["step"],
            step_id=job["step"].split("[", 1)[0],
            attempt=int(job["attempt"]),
            idempotency_key=job["idempotency_key"],
            kind=job["kind"],
            params=job["params"],
            timeout=job["timeout"],
            compensation=bool(job["compensation"]),
        )
        ctx = ActivityContext(
            workflows_dir=self.options.workflows_dir,
            kill_grace=float(job["kill_grace"]),
            output_cap=int(job["output_cap"]),
            on_output=stream.feed,
        )
        try:
            async with asyncio.timeout(call.timeout):
                result = await activity(call.kind)(call, ctx)
            return {"ok": True, "result": result}
        except StepFailure as exc:
            return {"ok": False, "kind": exc.kind, "message": exc.message, "result": exc.result}
        except TimeoutError:
            limit = format_duration(call.timeout or 0)
            return {"ok": False, "kind": "timeout", "message": f"timed out after {limit}", "result": {}}
        except Exception as exc:
            ref = secrets.token_hex(3)
            log.exception("job %s failed unexpectedly (ref %s)", job["id"], ref)
            message = f"something went wrong on the runner (ref {ref}): {type(exc).__name__}: {exc}"
            return {"ok": False, "kind": "action", "message": message, "result": {}}


async def run_until_stopped(options: Options) -> None:
    """Serve; a cancel (SIGTERM, Ctrl-C) ends it after every job's program is stopped."""
    runner = Runner(options)
    with contextlib.suppress(asyncio.CancelledError):
        await runner.serve()
