"""The app commands (``/workflow``, ``/approvals``, ``/human``, ``/agent``, ``/queue``, ``/conversation``),
and who and where an interaction or a message comes from.

The commands only declare their options (the same as on Slack and the console) and hand each call to the
bot's ``switchboard`` handler (``bot.platforms.discord.interactions.Interactions``), so the command-line
``switchboard discord sync-commands`` can build the same tree without a running Switchboard.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.identity import Identity, Place

if TYPE_CHECKING:
    from bot.platforms.discord.interactions import Interactions

ROLES_TTL = 60.0


def _sb(interaction: discord.Interaction) -> Interactions:
    handler: Interactions | None = getattr(interaction.client, "switchboard", None)
    if handler is None:
        raise app_commands.AppCommandError("this bot is not running Switchboard's handlers")
    return handler


class WorkflowGroup(app_commands.Group):
    """``/workflow run|list|help|status|cancel``; each call becomes a ``Command`` for the router."""

    def __init__(self) -> None:
        super().__init__(name="workflow", description="Run and follow Switchboard workflows")

    @app_commands.command(name="run", description="Start a workflow (a form asks for missing inputs)")
    @app_commands.describe(
        name="The workflow to run", inputs="Inputs as key=value pairs, e.g. service=api env=staging"
    )
    async def run(self, interaction: discord.Interaction, name: str, inputs: str | None = None) -> None:
        sb = _sb(interaction)
        await sb.guarded(interaction, sb.run(interaction, name, inputs or ""))

    @run.autocomplete("name")
    async def run_name(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await _sb(interaction).complete(interaction, "name", current)

    @app_commands.command(name="list", description="The workflows you may run here")
    async def list_(self, interaction: discord.Interaction) -> None:
        sb = _sb(interaction)
        await sb.guarded(interaction, sb.command(interaction, ["list"]))

    @app_commands.command(name="help", description="Usage, or a workflow's inputs")
    @app_commands.describe(name="A workflow (leave empty for the usage)")
    async def help(self, interaction: discord.Interaction, name: str | None = None) -> None:
        sb = _sb(interaction)
        await sb.guarded(interaction, sb.command(interaction, ["help", name]))

    @help.autocomplete("name")
    async def help_name(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await _sb(interaction).complete(interaction, "name", current)

    @app_commands.command(name="status", description="A run's status card, or your recent runs")
    @app_commands.describe(run="A run id (leave empty for your recent runs)")
    async def status(self, interaction: discord.Interaction, run: str | None = None) -> None:
        sb = _sb(interaction)
        await sb.guarded(interaction, sb.command(interaction, ["status", run]))

    @app_commands.command(name="cancel", description="Cancel a run")
    @app_commands.describe(run="The run id")
    async def cancel(self, interaction: discord.Interaction, run: str) -> None:
        sb = _sb(interaction)
        await sb.guarded(interaction, sb.command(interaction, ["cancel", run]))

    @app_commands.command(name="rewind", description="Undo what came after a checkpoint, then go on")
    @app_commands.describe(run="The run id", to="A checkpoint's name, or a step that succeeded")
    async def rewind(self, interaction: discord.Interaction, run: str, to: str) -> None:
        sb = _sb(interaction)
        await sb.guarded(interaction, sb.command(interaction, ["rewind", run, to]))

    @app_commands.command(name="rerun", description="A new run reusing the outputs of the steps before one")
    @app_commands.describe(run="The run id", step="The first step to run")
    async def rerun(self, interaction: discord.Interaction, run: str, step: str) -> None:
        sb = _sb(interaction)
        await sb.guarded(interaction, sb.command(interaction, ["rerun", run, step]))


def place(interaction: discord.Interaction) -> Place:
    """The channel the interaction came from; in a thread, permissions go by the parent channel's name."""
    channel: Any = interaction.channel
    named = channel.parent if isinstance(channel, discord.Thread) and channel.parent else channel
    name = getattr(named, "name", None)
    return Place("discord", str(interaction.channel_id), channel_name=f"#{name}" if name else None)


class Identities:
    """Discord users as ``Identity``: user id, display name, guild as workspace, role names as groups."""

    def __init__(self, admins: list[str]) -> None:
        self.admins = set(admins)
        self._roles: dict[int, tuple[float, dict[int, str]]] = {}  # guild id -> (fetched at, id -> name)

    async def of(self, interaction: discord.Interaction) -> Identity:
        """The identity of whoever triggered the interaction."""
        return await self.of_user(interaction.client, interaction.user, interaction.guild_id)

    async def of_user(
        self, client: discord.Client, user: discord.User | discord.Member, guild_id: int | None
    ) -> Identity:
        """The identity of ``user`` (a member when it came from a server), e.g. a message's author."""
        groups = await self._groups(client, user) if isinstance(user, discord.Member) else set()
        user_id = str(user.id)
        return Identity(
            platform="discord",
            workspace=str(guild_id) if guild_id else "dm",
            user_id=user_id,
            name=user.display_name,
            groups=frozenset(groups),
            admin=f"discord:{user_id}" in self.admins,
        )

    async def _groups(self, client: discord.Client, member: discord.Member) -> set[str]:
        # The interaction's member carries role ids only; the names come from the guild's roles, cached
        # from GUILD_CREATE (the non-privileged guilds intent), else fetched once a minute over REST.
        names: set[str] = set()
        missing: list[int] = []
        for role_id in member._roles:
            role = member.guild.get_role(role_id)
            if role is not None:
                names.add(role.name)
            else:
                missing.append(role_id)
        if missing:
            known = await self._guild_roles(client, member.guild.id)
            names.update(known[r] for r in missing if r in known)
        return names

    async def _guild_roles(self, client: discord.Client, guild_id: int) -> dict[int, str]:
        cached = self._roles.get(guild_id)
        if cached is not None and cached[0] > time.monotonic() - ROLES_TTL:
            return cached[1]
        try:
            roles = {int(r["id"]): str(r["name"]) for r in await client.http.get_roles(guild_id)}
        except discord.HTTPException:
            roles = {}  # the identity then has fewer groups; a refusal says which groups may
        self._roles[guild_id] = (time.monotonic(), roles)
        return roles


@app_commands.command(name="approvals", description="Approval requests waiting for your decision")
async def approvals_command(interaction: discord.Interaction) -> None:
    """``/approvals``: the pending requests this user may decide, with their buttons."""
    sb = _sb(interaction)
    await sb.guarded(interaction, sb.command(interaction, [], name="approvals"))


@app_commands.command(name="runners", description="Remote runners, their labels and whether they are busy")
async def runners_command(interaction: discord.Interaction) -> None:
    """``/runners``: the runners heard from lately."""
    sb = _sb(interaction)
    await sb.guarded(interaction, sb.command(interaction, [], name="runners"))


@app_commands.command(name="human", description="Talk to a person from the support team")
@app_commands.describe(text="What you need (optional)")
async def human_command(interaction: discord.Interaction, text: str | None = None) -> None:
    """``/human [text]``: straight to the queue, with or without an assistant."""
    sb = _sb(interaction)
    await sb.guarded(interaction, sb.command(interaction, text or "", name="human"))


@app_commands.command(name="agent", description="Go on or off duty as a support agent, or see your load")
@app_commands.describe(action="on, off or status", skills="Your skills, e.g. billing refunds (with on)")
@app_commands.choices(
    action=[app_commands.Choice(name=n, value=n) for n in ("on", "off", "status")],
)
async def agent_command(
    interaction: discord.Interaction, action: str = "status", skills: str | None = None
) -> None:
    """``/agent on|off|status [skills]``."""
    sb = _sb(interaction)
    text = " ".join(part for part in (action, skills or "") if part)
    await sb.guarded(interaction, sb.command(interaction, text, name="agent"))


@app_commands.command(name="queue", description="Who is waiting for a person, and each agent's load")
async def queue_command(interaction: discord.Interaction) -> None:
    """``/queue``."""
    sb = _sb(interaction)
    await sb.guarded(interaction, sb.command(interaction, [], name="queue"))


class ConversationGroup(app_commands.Group):
    """``/conversation transcript id``."""

    def __init__(self) -> None:
        super().__init__(name="conversation", description="Support conversations")

    @app_commands.command(name="transcript", description="A conversation's transcript")
    @app_commands.describe(id="The conversation id (on its handover card)")
    async def transcript(self, interaction: discord.Interaction, id: str) -> None:
        sb = _sb(interaction)
        await sb.guarded(interaction, sb.command(interaction, ["transcript", id], name="conversation"))
