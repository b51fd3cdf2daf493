"""A runtime's chat presence: run status cards and approval cards, written in the runtime's own commits."""

from __future__ import annotations

from bot.approvals.email_requests import ApprovalEmails
from bot.approvals.presence import ApprovalChat
from bot.runtime import webhook_events
from bot.runtime.runtime import Runtime
from bot.runtime.status_cards import StatusCards
from bot.storage.cards import card_upsert
from bot.tracing import make_traces


def install(runtime: Runtime) -> ApprovalChat:
    """Give ``runtime`` its chat presence: run status cards and approval cards (and approval e-mails,
    for ``notify: email``), written with each change.

    The bot process and every CLI runtime install the same hooks, so a run resumed or decided from the
    command line keeps its chat cards current (the bot's outbox delivers them).
    """
    cards = StatusCards(
        runtime.store.journal,
        card_upsert(runtime.store.engine),
        runtime.clock,
        runtime.settings.card_update_interval,
        live=lambda run_id: run_id in runtime.live,
        public_url=runtime.settings.public_url,
    )
    runtime.observers.append(cards)
    runtime.activity.on_text = cards.progress  # an llm step's text as it streams, on its run's card
    runtime.before_release.append(cards.close)
    traces = make_traces(runtime.settings.otel_endpoint)  # OTEL_EXPORTER_OTLP_ENDPOINT: runs as traces
    if traces is not None:
        runtime.observers.append(traces)
        runtime.before_release.append(traces.close)
    webhook_events.install(runtime)  # the same commits queue the outbound webhooks' events
    chat = ApprovalChat(runtime.store.engine, runtime.clock, runtime.settings.console_users)
    runtime.approvals.on_request.append(chat.on_request)
    runtime.approvals.on_change.append(chat.on_change)
    emails = ApprovalEmails(runtime.settings.console_users, runtime.clock, runtime.settings.smtp_host)
    runtime.approvals.on_request.append(emails.on_request)
    runtime.approvals.on_change.append(emails.on_change)
    return chat
