"""The bot process: one aiohttp server for every platform, the runtime, the outbox, and their lifecycle."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.api.callers import Callers
from bot.api.chat_sink import PLATFORM as API_PLATFORM
from bot.api.chat_sink import ApiChatAdapter
from bot.api.context import ApiContext
from bot.api.server import ApiRoutes
from bot.config import Settings
from bot.conversations.live_replies import LiveReplies
from bot.conversations.service import Conversations, make_conversations
from bot.dashboard.routes import Dashboard
from bot.delivery.contract import Platform
from bot.delivery.outbox import Outbox
from bot.delivery.webhooks import WebhookSender
from bot.platforms.context import PlatformContext
from bot.runtime.presence import install as install_approval_chat
from bot.runtime.runtime import Runtime
from bot.storage.database import engine_for, migrate
from bot.storage.dedupe import Dedupe, make_dedupe
from bot.storage.file_lock import ProcessLock, lock_sqlite_file
from bot.storage.pacing import make_pacer
from bot.storage.runs import RunStore
from bot.storage.webhook_queue import WebhookRows
from bot.triggers.install import Triggers, install_triggers
from bot.web_auth.guard import check_binding
from bot.web_auth.scrape import MetricsEndpoint
from handlers.router import Router
from handlers.services import Services

log = logging.getLogger(__name__)


@dataclass
class App:
    """Everything a running Switchboard holds."""

    settings: Settings
    engine: AsyncEngine
    runtime: Runtime
    router: Router
    outbox: Outbox
    dedupe: Dedupe
    server: web.Application
    context: PlatformContext
    conversations: Conversations | None = None
    platforms: dict[str, Platform] = field(default_factory=dict)
    runner: web.AppRunner | None = None
    port: int = 0
    file_lock: ProcessLock | None = None  # SQLite: this process's claim on the database file
    triggers: Triggers | None = None  # webhooks (/hooks/NAME) and schedules

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.settings.host}:{self.port}"


APP_KEY = web.AppKey("switchboard", App)


def platforms_for(settings: Settings, ctx: PlatformContext) -> tuple[dict[str, Platform], list[str]]:
    """The adapters the settings configure, and a line for each one skipped, saying why."""
    chosen: dict[str, Platform] = {}
    skipped = []
    if settings.console:
        from bot.platforms.console.adapter import ConsoleAdapter

        chosen["console"] = ConsoleAdapter(ctx)
    else:
        skipped.append("console: SWITCHBOARD_CONSOLE is false")
    if settings.slack_bot_token and (settings.slack_signing_secret or settings.slack_app_token):
        from bot.platforms.slack.adapter import SlackAdapter

        chosen["slack"] = SlackAdapter(ctx)
    else:
        skipped.append(
            "Slack: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode)"
        )
    if settings.discord_token:
        from bot.platforms.discord.adapter import DiscordAdapter

        chosen["discord"] = DiscordAdapter(ctx)
    else:
        skipped.append("Discord: set DISCORD_TOKEN")
    if settings.smtp_host:
        from bot.platforms.email.adapter import EmailAdapter

        chosen["email"] = EmailAdapter(ctx)  # approval e-mails, and the page their links open
    else:
        skipped.append("e-mail: set SWITCHBOARD_SMTP_HOST to send approvals by e-mail")
    return chosen, skipped


async def start_app(
    settings: Settings, clock: Callable[[], float] | None = None, settle_heap: bool = False
) -> App:
    """Migrate, resume unfinished runs, start the outbox, the web server and every configured platform.

    ``settle_heap`` (``switchboard run``, a process that serves until it stops): just before listening,
    freeze what start-up built out of the garbage collector's way (``settle``)."""
    check_binding(settings)  # before anything starts: dev sign-in off loopback is refused
    file_lock = lock_sqlite_file(settings.database_url)  # before anything touches the file
    engine = engine_for(settings)
    try:
        await migrate(engine)
    except BaseException:
        if file_lock is not None:
            file_lock.release()
        await engine.dispose()
        raise
    runtime = (
        Runtime(settings, RunStore(engine), clock=clock) if clock else Runtime(settings, RunStore(engine))
    )
    router = Router(Services(runtime, settings))
    outbox = Outbox(
        engine,
        {},
        runtime.owner,
        runtime.clock,
        card_interval=settings.card_update_interval,
        pacer=make_pacer(engine, settings.redis_url),
        timeout=settings.delivery_timeout,
        webhooks=WebhookSender(
            WebhookRows(engine),
            runtime.owner,
            runtime.clock,
            settings.http_guard(),
            timeout=settings.delivery_timeout,
        ),
    )
    outbox.metrics = runtime.metrics
    web_app = web.Application()
    web_app.router.add_get("/healthz", _healthz)
    MetricsEndpoint(settings, engine, runtime.metrics, runtime.clock).attach(web_app)
    dedupe = make_dedupe(engine, settings.redis_url)
    context = PlatformContext(settings, router, dedupe, engine, runtime.clock)
    app = App(settings, engine, runtime, router, outbox, dedupe, web_app, context, file_lock=file_lock)
    web_app[APP_KEY] = app
    app.platforms, skipped = platforms_for(settings, context)
    Dashboard(router.services, context.directories).attach(web_app)
    ApiRoutes(
        ApiContext(router.services, lambda: _health(app)),
        Callers(settings, engine, runtime.clock, context.directories),
    ).attach(web_app)
    for platform in app.platforms.values():
        platform.attach(web_app)
    outbox.adapters.update(app.platforms)
    outbox.adapters[API_PLATFORM] = ApiChatAdapter()  # conversations held over the REST API
    install_approval_chat(runtime)  # status and approval cards, written with each change
    runtime.after_commit.append(outbox.wake)
    app.conversations = make_conversations(runtime, router.services.catalog, outbox.wake)
    app.conversations.live = LiveReplies(outbox.adapters, engine, app.conversations.out)
    router.services.conversations = context.conversations = app.conversations
    resumed = await runtime.start(resume=True)
    await app.conversations.start()
    app.triggers = await install_triggers(web_app, runtime, router.services.catalog)
    outbox.start()
    app.runner = web.AppRunner(web_app, access_log=None)
    await app.runner.setup()
    if settle_heap:
        settle()
    site = web.TCPSite(app.runner, settings.host, settings.port)
    await site.start()
    app.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # the real port when 0 was asked
    context.url = app.url
    runtime.activity.http_guard = settings.http_guard(port=app.port)  # http steps never call this listener
    assert outbox.webhooks is not None
    outbox.webhooks.guard = runtime.activity.http_guard  # nor do webhooks
    for platform in app.platforms.values():
        await platform.start()
        log.info("started %s", platform.describe())
    for line in skipped:
        log.info("skipped %s", line)
    _describe_conversations(settings, app)
    log.info(
        "resumed %d running run(s); %d more wait for a timer or an approval; health check at %s/healthz",
        len(resumed),
        await runtime.store.count_runs("waiting"),
        app.url,
    )
    return app


def settle() -> None:
    """Keep the cyclic garbage collector off what start-up built, for as long as the process runs.

    What is imported and made at start (modules, SQLAlchemy's tables and compiled statements, Bolt,
    pydantic models: hundreds of thousands of objects) lives as long as the process. Left to the
    collector, every full collection walks all of it again, with the event loop stopped: measured at
    0.2 to 0.7 s, every few seconds at a few hundred console commands a second, which was most of the
    console's p99. Frozen (``gc.freeze``), a full collection walks only what was made since. Called
    before the port opens, so the one collection here delays no request.
    """
    gc.collect()
    gc.freeze()


def _describe_conversations(settings: Settings, app: App) -> None:
    """Say at start whether the assistant answers, and where hand-overs go on each platform."""
    from bot.conversations.outbound import agents_channel

    if settings.llm() is None:
        log.info("conversations: no OPENAI_API_KEY, so every conversation goes straight to the human queue")
    for name in app.platforms:
        if name == "email":
            continue  # e-mail carries approvals only, never conversations
        if agents_channel(settings, name) is None:
            log.warning(
                "conversations: no agents' channel on %s, so hand-overs there wait in /queue with no card; "
                "set SWITCHBOARD_AGENTS_CHANNEL (e.g. %s:C0123)",
                name,
                name,
            )


async def stop_app(app: App, grace: float = 10.0, flush: float = 5.0) -> None:
    """Stop taking work, give running steps ``grace`` seconds, flush the outbox for ``flush`` seconds."""
    for platform in app.platforms.values():
        try:
            await platform.stop()
        except Exception:
            log.exception("stopping %s failed", platform.platform)
    if app.conversations is not None:
        await app.conversations.stop()
    await app.runtime.stop(grace=grace)
    await app.outbox.stop(deadline=flush)
    if app.runner is not None:
        await app.runner.cleanup()
    await app.engine.dispose()
    if app.file_lock is not None:
        app.file_lock.release()


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response(_health(request.app[APP_KEY]))


def _health(app: App) -> dict[str, object]:
    return {"ok": True, "platforms": sorted(app.platforms), "runs_loaded": len(app.runtime.live)}
