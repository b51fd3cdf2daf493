"""Every endpoint under ``/api/v1`` in one table: method, path, scope, models and statuses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.api.approvals import ApprovalEndpoints, ApprovalQuery
from bot.api.context import ApiContext
from bot.api.conversations import ConversationEndpoints, ConversationInfo, Queue, Said, UserMessage
from bot.api.models import (
    ApprovalInfo,
    ApprovalList,
    Decision,
    DecisionResult,
    Done,
    Health,
    RollbackRequest,
    RunDetail,
    RunPage,
    RunSummary,
    StartRun,
    ValidateRequest,
    ValidateResult,
    WorkflowInfo,
    WorkflowList,
)
from bot.api.routing import Header, Route
from bot.api.runs import IDEMPOTENCY_HEADER, RunEndpoints, RunQuery
from bot.api.stream import RunStream
from bot.api.workflows import WorkflowEndpoints

if TYPE_CHECKING:
    from bot.api.server import SystemEndpoints

PREFIX = "/api/v1"


def routes(ctx: ApiContext, system: SystemEndpoints) -> list[Route]:
    """The route table."""
    wf, runs, stream, appr = WorkflowEndpoints(ctx), RunEndpoints(ctx), RunStream(ctx), ApprovalEndpoints(ctx)
    conv = ConversationEndpoints(ctx)
    run = f"{PREFIX}/runs/{{run_id}}"
    talk = f"{PREFIX}/conversations/{{conversation_id}}"
    return [
        Route(
            "GET",
            f"{PREFIX}/health",
            "health",
            "Whether this process is up",
            system.health,
            "system",
            returns=Health,
        ),
        Route(
            "GET",
            f"{PREFIX}/workflows",
            "listWorkflows",
            "Every workflow, and whether you may run it",
            wf.index,
            "workflows",
            scope="runs:read",
            returns=WorkflowList,
        ),
        Route(
            "GET",
            f"{PREFIX}/workflows/{{name}}",
            "getWorkflow",
            "A workflow's typed inputs and who may run it",
            wf.get,
            "workflows",
            scope="runs:read",
            returns=WorkflowInfo,
            errors=(400, 404),
        ),
        Route(
            "POST",
            f"{PREFIX}/workflows/validate",
            "validateWorkflow",
            "Check a workflow file: every problem with its line and column",
            wf.validate,
            "workflows",
            scope="runs:read",
            body=ValidateRequest,
            yaml_body=True,
            returns=ValidateResult,
            errors=(400,),
            description='Send JSON `{"source": ...}` or the file itself with Content-Type: application/yaml.',
        ),
        Route(
            "POST",
            f"{PREFIX}/runs",
            "startRun",
            "Start a run with inputs",
            runs.start,
            "runs",
            scope="runs:write",
            body=StartRun,
            returns=RunSummary,
            status=201,
            also=(200,),
            errors=(400, 404, 409),
            headers=(
                Header(
                    IDEMPOTENCY_HEADER,
                    "A retried POST with the same key starts no second run: the "
                    "first run is answered (200, Idempotent-Replayed: true)",
                ),
            ),
            description="The same permissions as `/workflow run`. 201 with a Location for a new run.",
        ),
        Route(
            "GET",
            f"{PREFIX}/runs",
            "listRuns",
            "Runs, newest first, with filters and a cursor",
            runs.index,
            "runs",
            scope="runs:read",
            query=RunQuery,
            returns=RunPage,
            errors=(400,),
        ),
        Route(
            "GET",
            run,
            "getRun",
            "A run with its steps, outputs, approvals and events",
            runs.get,
            "runs",
            scope="runs:read",
            returns=RunDetail,
            errors=(404,),
        ),
        Route(
            "POST",
            f"{run}/cancel",
            "cancelRun",
            "Cancel a run (its starter, admins, permissions.cancel)",
            runs.cancel,
            "runs",
            scope="runs:write",
            returns=Done,
            errors=(400, 404, 409),
        ),
        Route(
            "POST",
            f"{run}/retry",
            "retryRun",
            "Run a failed run's failed steps again",
            runs.retry,
            "runs",
            scope="runs:write",
            returns=Done,
            errors=(400, 404, 409),
        ),
        Route(
            "POST",
            f"{run}/rollback",
            "rollbackRun",
            "Compensate a finished run's steps, newest first",
            runs.rollback,
            "runs",
            scope="runs:write",
            body=RollbackRequest,
            returns=Done,
            errors=(400, 404, 409),
        ),
        Route(
            "GET",
            f"{run}/events",
            "followRun",
            "The run's events as Server-Sent Events, live until it ends",
            stream.events,
            "runs",
            scope="runs:read",
            media="text/event-stream",
            errors=(404,),
            headers=(Header("Last-Event-ID", "Resume after this event's seq (EventSource sends it)", 20),),
            description="Each event: `id` its seq, `event` its type, `data` {seq, type, step, data, at}.",
        ),
        Route(
            "GET",
            f"{PREFIX}/approvals",
            "listApprovals",
            "Approval requests waiting for you, or for a run",
            appr.index,
            "approvals",
            scope="runs:read",
            query=ApprovalQuery,
            returns=ApprovalList,
            errors=(404,),
        ),
        Route(
            "GET",
            f"{PREFIX}/approvals/{{approval_id}}",
            "getApproval",
            "One approval request",
            appr.get,
            "approvals",
            scope="runs:read",
            returns=ApprovalInfo,
            errors=(404,),
        ),
        Route(
            "POST",
            f"{PREFIX}/approvals/{{approval_id}}/decision",
            "decideApproval",
            "Approve, reject or request changes, as yourself",
            appr.decide,
            "approvals",
            scope="approvals:write",
            body=Decision,
            returns=DecisionResult,
            errors=(400, 404, 409),
            description="The same rules as chat: approvers, self-approval, quorum, one vote each. "
            "A form approval needs its `fields`; `changes` needs `feedback`. Audited with source `api`.",
        ),
        Route(
            "POST",
            f"{PREFIX}/conversations/messages",
            "postMessage",
            "Write to the assistant as yourself (a chat widget); the answer or the queue follows",
            conv.post,
            "conversations",
            scope="conversations:write",
            body=UserMessage,
            returns=ConversationInfo,
            errors=(400, 404),
            headers=(Header(IDEMPOTENCY_HEADER, "A resent message with the same key is taken once"),),
            description="Poll GET /api/v1/conversations/ID for the replies.",
        ),
        Route(
            "GET",
            f"{PREFIX}/conversations/queue",
            "conversationQueue",
            "The conversations waiting for a person (agents only)",
            conv.queue,
            "conversations",
            scope="conversations:write",
            returns=Queue,
        ),
        Route(
            "GET",
            talk,
            "getConversation",
            "A conversation and its transcript (yours, or any for an agent)",
            conv.get,
            "conversations",
            scope="conversations:write",
            returns=ConversationInfo,
            errors=(404,),
        ),
        Route(
            "POST",
            f"{talk}/handover",
            "askForHuman",
            "Ask for a person, as the Talk to a human button does",
            conv.handover,
            "conversations",
            scope="conversations:write",
            returns=ConversationInfo,
            errors=(404, 409),
        ),
        Route(
            "POST",
            f"{talk}/resolve",
            "resolveConversation",
            "Close a conversation (the agent holding it, or any agent for a queued one)",
            conv.resolve,
            "conversations",
            scope="conversations:write",
            returns=Said,
            errors=(400, 404),
        ),
        Route("GET", f"{PREFIX}/openapi.json", "openapi", "This document", system.openapi, "system"),
        Route(
            "GET", f"{PREFIX}/docs", "docs", "The API's docs page", system.docs, "system", media="text/html"
        ),
    ]
