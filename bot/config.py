"""Configuration: one pydantic-settings class, built once at start and passed down."""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import BadInput
from engine.activities.base import LlmSettings
from engine.activities.http_guard import HttpGuard, default_denies, own_listener, parse_rule

PREFIX = "SWITCHBOARD_"


def _comma_list(value: Any) -> Any:
    # SWITCHBOARD_ADMINS=console:alice,slack:U024BE7LH as well as a JSON list.
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]
PLATFORMS = ("slack", "discord", "console")


def for_platform(entries: list[str], platform: str, *, bare: bool = True) -> list[str]:
    """The values of a ``platform:value`` list that apply to ``platform``: its own entries first, then
    (with ``bare``) the entries that name no platform, which apply to every one."""
    own, general = [], []
    for entry in entries:
        kind, sep, value = entry.partition(":")
        if sep and kind in PLATFORMS:
            if kind == platform:
                own.append(value)
        elif bare:
            general.append(entry)
    return own + general


class Settings(BaseSettings):
    """Every setting, read from the environment (standard names where the ecosystem has them)."""

    # A misspelt keyword or SWITCHBOARD_* variable is an error, never silently ignored.
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="forbid", populate_by_name=True)

    database_url: str = Field(
        default="sqlite+aiosqlite:///./switchboard.db",
        validation_alias=AliasChoices("DATABASE_URL", "SWITCHBOARD_DATABASE_URL"),
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "SWITCHBOARD_REDIS_URL")
    )
    workflows_dir: Path = Path("./workflows")
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    # OpenTelemetry's own variable: traces (a run a trace, a step a span) go to this OTLP/HTTP collector.
    otel_endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    llm_model: str = "gpt-4o-mini"
    llm_timeout: float = 60.0
    llm_max_tokens: int = Field(default=1024, ge=1, le=1_000_000)  # per answer; an llm step may set its own
    max_parallel_steps: int = Field(default=64, ge=1, le=10_000)
    # Runs one process drives at once (parked runs do not count); at capacity it claims no more, so work
    # spreads over the processes by load.
    max_runs: int = Field(default=100, ge=1, le=100_000)
    lease_seconds: float = Field(default=30.0, ge=2.0)
    crash_attempts: int = Field(default=3, ge=1, le=100)  # a run that crashed its process this often fails
    # Assistant turns one process runs at once; more wait their turn instead of outrunning the pool.
    max_turns: int = Field(default=10, ge=1, le=10_000)
    # Connections: per process. PostgreSQL's default max_connections is 100 for every process together.
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_max_overflow: int = Field(default=10, ge=0, le=1000)
    db_pool_timeout: float = Field(default=30.0, gt=0.0)  # waiting for a free connection
    db_pool_recycle: float = Field(default=1800.0, gt=0.0)  # reconnect connections older than this
    db_pgbouncer: bool = False  # PgBouncer in transaction mode: no prepared-statement cache
    db_application_name: str = Field(default="switchboard", max_length=63)
    poll_interval: float = Field(default=1.0, gt=0.0)
    kill_grace: float = Field(default=5.0, ge=0.0)
    # A remote runner's lease on a job: renewed by its heartbeats (every third of it); a runner silent for
    # this long loses its jobs, which then follow their step's on_interrupt.
    runner_lease: float = Field(default=15.0, ge=1.0, le=600.0)
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, validation_alias=AliasChoices("PORT", "SWITCHBOARD_PORT"))
    # Where http steps may go besides the defaults: CIDRs, addresses or host names, each with an
    # optional :port. ALLOW lifts the built-in refusals (own listener, link-local, cloud metadata).
    http_allow: CommaList = []
    http_deny: CommaList = []
    admins: CommaList = []  # "console:alice", "slack:U024BE7LH", "discord:80351110224678912"
    # Sign-in for the web console: "dev" (a user picker, loopback only) or "oidc" (an OpenID provider).
    auth: Literal["dev", "oidc"] = "dev"
    public_url: str | None = None  # the address people use, e.g. https://switchboard.example.com
    session_secret: SecretStr | None = None  # signs session cookies; generated and stored when unset
    session_hours: float = Field(default=12.0, gt=0.0, le=24 * 30)
    oidc_issuer: str | None = None  # e.g. https://slack.com, https://accounts.google.com
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid profile email"
    oidc_claim: str = "email"  # the ID token claim looked up in oidc_users (providers other than Slack)
    oidc_users: dict[str, str] = {}  # claim value -> identity: "console:alice", "slack:U024BE7LH"
    # The local console: on unless switched off; its channels, and its users with their groups.
    console: bool = True
    console_channels: CommaList = ["ops", "approvals", "agents"]
    console_users: dict[str, list[str]] = {
        "alice": ["release-managers"],
        "bob": ["release-managers"],
        "carol": ["eng-directors"],
        "dave": ["agents"],
        "erin": [],
    }
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = "https://slack.com/api/"
    discord_token: SecretStr | None = Field(default=None, validation_alias="DISCORD_TOKEN")
    discord_api_url: str | None = None  # e.g. a rate-limit proxy, or a test server
    discord_gateway_url: str | None = None
    card_update_interval: float = Field(default=1.0, ge=0.0)  # at most one edit per card per interval
    delivery_timeout: float = Field(default=10.0, gt=0.0, le=300.0)  # a chat send unanswered by then: retried
    # Conversations: the assistant, the agents' channel and queue, and their deadlines (seconds).
    llm_retries: int = Field(default=2, ge=0, le=10)
    llm_context_tokens: int = Field(default=6000, ge=500)
    support_channels: CommaList = []  # channels where every message goes to the assistant
    agents_channel: CommaList = []  # "C0123" or "slack:C0123,discord:1234"; the console uses #agents
    agents_fallback_channel: CommaList = []  # where an unclaimed conversation escalates
    agent_groups: CommaList = []  # who may claim ("group:support", "user:U024BE7LH"); empty: anyone
    agent_capacity: int = Field(default=3, ge=1, le=100)
    handover_mode: Literal["claim", "auto"] = "claim"
    handover_keywords: CommaList = []  # words in a user message that go straight to a person
    handover_after_failures: int = Field(default=3, ge=1)  # failed assistant turns in a row
    handover_on_workflow_failure: bool = True
    # The assistant hands over only when its reported confidence is below this (unset: whenever it asks).
    handover_confidence_below: float | None = Field(default=None, ge=0.0, le=1.0)
    # Per channel and per workflow hand-over triggers and routes (YAML; the variables above are defaults).
    handover_file: Path | None = None
    # The cost figures of `conversations stats`: the LLM's price per million tokens, an agent's hourly cost.
    llm_price_prompt_per_mtok: float | None = Field(default=None, ge=0.0)
    llm_price_completion_per_mtok: float | None = Field(default=None, ge=0.0)
    agent_hourly_cost: float | None = Field(default=None, ge=0.0)
    cost_currency: str = Field(default="USD", max_length=10)
    debounce: float = Field(default=1.5, ge=0.0)  # quick messages within this window make one turn
    memory_ttl: float = Field(default=86_400.0, gt=0.0)
    reping_after: float = Field(default=120.0, gt=0.0)
    escalate_after: float = Field(default=300.0, gt=0.0)
    agent_remind_after: float = Field(default=300.0, gt=0.0)
    agent_offer_after: float = Field(default=600.0, gt=0.0)
    user_warn_after: float = Field(default=1800.0, gt=0.0)
    user_close_after: float = Field(default=3600.0, gt=0.0)
    # GET /metrics: a Bearer token (this one, or a machine token with runs:read), or a client address
    # in the allow-list (CIDRs; loopback by default, empty for tokens only).
    metrics_token: SecretStr | None = None
    metrics_allow: CommaList = ["127.0.0.0/8", "::1/128"]
    log_format: Literal["text", "json"] = "text"
    # Approvals by e-mail (`notify: email`): the SMTP server, and where each approver's address comes from.
    smtp_host: str | None = None  # set it to send approval e-mails
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"  # ssl: implicit TLS (port 465)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "switchboard@localhost"
    smtp_timeout: float = Field(default=10.0, gt=0.0, le=300.0)
    # identity or approver name -> address: {"console:alice": "alice@example.com", "U024BE7LH": "..."}
    email_addresses: dict[str, str] = {}

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown(cls, data: Any) -> Any:
        # pydantic-settings skips SWITCHBOARD_* variables that match no field, and `extra="forbid"`
        # alone names a misspelt keyword without saying what was meant: both get a did-you-mean here.
        _refuse_unknown_variables()
        if isinstance(data, dict):
            names = set(cls.model_fields) | _aliases()
            for key in data:
                if key not in names:
                    raise ValueError(f"unknown setting {key}{_hint(key, sorted(cls.model_fields))}")
        return data

    @field_validator("http_allow", "http_deny")
    @classmethod
    def _http_rules(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            parse_rule(entry)  # a ValueError names the entry that is not a CIDR, address or host
        return entries

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or a CIDR such as 10.0.0.0/8") from None
        return entries

    def http_guard(self, port: int | None = None) -> HttpGuard:
        """Where http steps may not go: the listener (at ``port`` once bound, when PORT is 0),
        link-local and metadata addresses, and SWITCHBOARD_HTTP_DENY."""
        listening = self.port if port is None else port
        own = own_listener(self.host, listening) if listening else ()
        return HttpGuard(
            deny=own + default_denies(self.http_deny),
            allow=tuple(parse_rule(entry) for entry in self.http_allow),
        )

    def llm(self) -> LlmSettings | None:
        """The LLM connection, or None when no API key is set."""
        if self.openai_api_key is None:
            return None
        return LlmSettings(
            api_key=self.openai_api_key.get_secret_value(),
            base_url=self.openai_base_url,
            model=self.llm_model,
            timeout=self.llm_timeout,
            max_retries=self.llm_retries,
            max_tokens=self.llm_max_tokens,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def known_names() -> set[str]:
    """Every SWITCHBOARD_* variable Settings reads."""
    return {PREFIX + name.upper() for name in Settings.model_fields}


def _aliases() -> set[str]:
    found = set()
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        if isinstance(alias, str):
            found.add(alias)
        elif isinstance(alias, AliasChoices):
            found.update(c for c in alias.choices if isinstance(c, str))
    return found


def _hint(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; valid settings: {', '.join(known)}"


def _refuse_unknown_variables() -> None:
    known = known_names()
    for name in sorted(os.environ):
        if name.startswith(PREFIX) and name not in known:
            raise BadInput(f"unknown setting {name}{_hint(name, sorted(known))}")


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment; a misspelt setting or a bad value is a ``BadInput``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadInput(f"invalid configuration: {problems}") from None
