"""``/api/v1/runner/...``: what a ``switchboard runner`` calls: register, heartbeat, take a job, report.

Only a machine token with the ``runner`` scope gets here, and a runner registers only labels its token
carries. A runner sees the rendered parameters of the jobs it holds and nothing else: those parameters
hold only the secrets its own step names, and they are erased once the job ends. Every job call checks
that the job is leased to this runner, so another runner's token can neither read nor end it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pydantic import BaseModel, Field

from bot.api.callers import Caller
from bot.api.context import ApiContext
from bot.api.models import Body
from bot.api.routing import Call, Route
from bot.errors import BadInput, Conflict, NotFound, NotPermitted
from bot.runtime import job_secrets
from bot.runtime.runtime import Runtime
from bot.storage.job_bell import FALLBACK
from bot.storage.runner_jobs import LEASED, Job
from bot.storage.runner_registry import RunnerRow
from engine.spec import RUNNER_LABEL

MAX_WAIT = 25.0  # seconds one long-poll may hold a request open
SEEN_EVERY = 1.0  # seconds: a long-poll stores the runner's last_seen at most this often
KNOWN_RUNNERS = 10_000  # registrations kept in memory (a restarting runner registers anew each time)
MAX_LINES = 500  # output lines per upload
MAX_LINE = 2000  # characters kept of one line
Label = Field(pattern=RUNNER_LABEL.pattern, max_length=63)


class Register(Body):
    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    labels: list[str] = Field(min_length=1, max_length=16)
    version: str = Field(max_length=40)
    host: str = Field(default="", max_length=200)
    concurrency: int = Field(ge=1, le=64)


class Registered(BaseModel):
    runner_id: str
    lease_seconds: float = Field(description="A job's lease: heartbeat at least every third of it")
    poll_seconds: float = Field(description="The longest a call to take a job waits")


class Heartbeat(Body):
    jobs: list[str] = Field(default=[], max_length=64, description="The jobs this runner is running")


class Told(BaseModel):
    stop: list[str] = Field(description="Jobs to stop now (cancelled, or no longer this runner's)")
    gone: list[str] = Field(description="Of those, jobs whose lease was lost: do not report them")


class Wait(Body):
    wait: float = Field(default=20.0, ge=0.0, le=MAX_WAIT)


class JobOffer(BaseModel):
    id: str
    run_id: str
    step: str
    attempt: int
    kind: str
    params: dict[str, Any]
    idempotency_key: str
    timeout: float | None
    kill_grace: float
    output_cap: int
    compensation: bool


class Next(BaseModel):
    job: JobOffer | None = Field(description="The job now leased to this runner, or null: call again")


class Output(Body):
    lines: list[str] = Field(max_length=MAX_LINES)


class Result(Body):
    ok: bool
    result: dict[str, Any] = {}
    kind: str | None = Field(
        default=None,
        max_length=20,
        description="The failure's kind when not ok; 'interrupted' hands the job back (runner stopping)",
    )
    message: str = Field(default="", max_length=2000)


class Accepted(BaseModel):
    accepted: bool


class RunnerEndpoints:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.svc = ctx.services
        # Registrations read here: what the calls check (the token, the labels, the room) never changes
        # after registering, so a job's path does not read the runner's row again on every call.
        self._known: dict[str, RunnerRow] = {}
        self._seen_at: dict[str, float] = {}  # runner -> when a long-poll here last stored last_seen

    @property
    def rt(self) -> Runtime:
        return self.svc.runtime

    async def register(self, call: Call) -> Registered:
        body: Register = call.body
        caller = _runner_token(call.who)
        bad = [label for label in body.labels if not RUNNER_LABEL.match(label)]
        if bad:
            raise BadInput(f"Runner label {bad[0]!r} is not a label: letters, digits, '.', '_', '-'")
        missing = sorted(set(body.labels) - caller.runner_labels)
        if missing:
            raise NotPermitted(
                f"This {caller.via} may take jobs labelled {', '.join(sorted(caller.runner_labels))} only, "
                f"not {', '.join(missing)}; make a token with `switchboard tokens create --scope runner "
                f"--label {','.join(sorted(set(body.labels)))} ...`."
            )
        now = self.svc.now()
        row = await self.rt.runners.register(
            body.name, caller.token_id, frozenset(body.labels), body.version, body.host, body.concurrency, now
        )
        return Registered(
            runner_id=row.id, lease_seconds=self.rt.settings.runner_lease, poll_seconds=MAX_WAIT
        )

    async def heartbeat(self, call: Call) -> Told:
        body: Heartbeat = call.body
        runner = await self._runner(call)
        now = self.svc.now()
        await self.rt.runners.seen(runner.id, len(body.jobs), now)
        jobs = await self.rt.jobs.renew(runner.id, body.jobs, now, self.rt.settings.runner_lease)
        found = {j.id: j for j in jobs}
        gone = [
            i
            for i in body.jobs
            if (j := found.get(i)) is None or j.runner_id != runner.id or j.status != LEASED
        ]
        stop = gone + [j.id for j in jobs if j.cancel_requested and j.id not in gone]
        return Told(stop=stop, gone=gone)

    async def next(self, call: Call) -> Next:
        body: Wait = call.body
        runner = await self._runner(call)
        lease, labels = self.rt.settings.runner_lease, frozenset(runner.labels)
        deadline = self.svc.now() + min(body.wait, MAX_WAIT)
        if self.svc.now() - self._seen_at.get(runner.id, 0.0) >= SEEN_EVERY:  # heartbeats store it too
            if len(self._seen_at) >= KNOWN_RUNNERS:
                self._seen_at.clear()
            self._seen_at[runner.id] = self.svc.now()
            await self.rt.runners.touch(runner.id, self.svc.now())
        # Woken when a job is queued (in this process, or by NOTIFY from another on PostgreSQL); the
        # slow fallback look is there should a wake-up be lost.
        with self.rt.jobs.bell.queued.listen() as queued:
            while True:
                queued.clear()  # before the claim: a job queued during it makes the next one come at once
                now = self.svc.now()
                job = await self.rt.jobs.claim(runner.id, runner.name, labels, runner.concurrency, now, lease)
                if job is not None:
                    return Next(job=self._offer(job))
                if now >= deadline:
                    return Next(job=None)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(FALLBACK, deadline - now)):
                        await queued.wait()

    async def output(self, call: Call) -> Accepted:
        body: Output = call.body
        runner = await self._runner(call)
        text = "".join(line[:MAX_LINE].rstrip("\n") + "\n" for line in body.lines)
        return Accepted(accepted=await self.rt.jobs.append_output(call.path["job_id"], runner.id, text))

    async def result(self, call: Call) -> Accepted:
        body: Result = call.body
        runner = await self._runner(call)
        outcome = {"ok": body.ok, "result": body.result, "kind": body.kind, "message": body.message}
        if not body.ok and body.kind == "interrupted":  # the runner is stopping: on_interrupt decides
            if await self.rt.jobs.hand_back(call.path["job_id"], runner.id, self.svc.now()):
                return Accepted(accepted=True)
        elif await self.rt.jobs.finish(call.path["job_id"], runner.id, outcome, self.svc.now()):
            return Accepted(accepted=True)
        job = await self.rt.jobs.get(call.path["job_id"])
        if job is None or job.runner_id != runner.id:
            raise NotFound(f"This runner holds no job {call.path['job_id']!r}.")
        raise Conflict(
            f"Job {job.id} is {job.status}, no longer leased to this runner (its lease lapsed or it was "
            "cancelled): the result is not used."
        )

    async def _runner(self, call: Call) -> RunnerRow:
        caller = _runner_token(call.who)
        runner = self._known.get(call.path["runner_id"]) or await self.rt.runners.get(call.path["runner_id"])
        if runner is not None and len(self._known) < KNOWN_RUNNERS:
            self._known[runner.id] = runner
        if runner is None or runner.token_id != caller.token_id:
            raise NotFound(
                f"No runner {call.path['runner_id']!r} registered with this token: register again."
            )
        return runner

    def _offer(self, job: Job) -> JobOffer:
        activity = self.rt.activity
        return JobOffer(
            id=job.id,
            run_id=job.run_id,
            step=job.step,
            attempt=job.attempt,
            kind=job.kind,
            params=job_secrets.reveal(job.params or {}, job.secret_nonce)
            if job.secret_nonce
            else job.params or {},
            idempotency_key=job.idempotency_key,
            timeout=job.timeout,
            kill_grace=activity.kill_grace,
            output_cap=activity.output_cap,
            compensation=job.compensation,
        )


def _runner_token(caller: Caller) -> Caller:
    if not caller.token_id:
        raise NotPermitted("Runner calls take a runner token (`switchboard tokens create --scope runner`).")
    if not caller.runner_labels:
        raise NotPermitted(
            f"This {caller.via} carries no runner labels; make one with `switchboard tokens create --scope "
            "runner --label LABEL ...`."
        )
    return caller


def runner_routes(ctx: ApiContext, prefix: str) -> list[Route]:
    """The runner endpoints, for the route table."""
    ep = RunnerEndpoints(ctx)
    runner = f"{prefix}/runner/{{runner_id}}"
    return [
        Route(
            "POST",
            f"{prefix}/runner/register",
            "registerRunner",
            "A runner says who it is and which labels it serves (each start registers anew)",
            ep.register,
            "runners",
            scope="runner",
            body=Register,
            returns=Registered,
            errors=(400,),
        ),
        Route(
            "POST",
            f"{runner}/heartbeat",
            "runnerHeartbeat",
            "Renew the leases of the jobs the runner is running; answers which to stop",
            ep.heartbeat,
            "runners",
            scope="runner",
            body=Heartbeat,
            returns=Told,
            errors=(404,),
        ),
        Route(
            "POST",
            f"{runner}/next",
            "takeRunnerJob",
            "Long-poll for a job whose labels the runner has; it is leased to the runner when answered",
            ep.next,
            "runners",
            scope="runner",
            body=Wait,
            returns=Next,
            errors=(404,),
        ),
        Route(
            "POST",
            f"{runner}/jobs/{{job_id}}/output",
            "runnerJobOutput",
            "Lines of output of a running job (the newest 64 KiB are kept)",
            ep.output,
            "runners",
            scope="runner",
            body=Output,
            returns=Accepted,
            errors=(404,),
        ),
        Route(
            "POST",
            f"{runner}/jobs/{{job_id}}/result",
            "runnerJobResult",
            "The job's end: its result, or its failure's kind and message; refused once the lease is lost",
            ep.result,
            "runners",
            scope="runner",
            body=Result,
            returns=Accepted,
            errors=(404, 409),
        ),
    ]
