"""The discord.py bot: the ``/workflow`` tree, buttons that survive restarts, and where Discord is.

Shared by the running adapter and ``switchboard discord sync-commands`` (which only logs in over REST).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from bot.config import Settings
from bot.platforms.discord.commands import (
    ConversationGroup,
    WorkflowGroup,
    agent_command,
    approvals_command,
    human_command,
    queue_command,
    runners_command,
)
from bot.platforms.discord.views import CARD_TEMPLATE, UI_TEMPLATE, UNKNOWN_BUTTON, CardButton, UiButton

if TYPE_CHECKING:
    from bot.platforms.discord.interactions import Interactions

log = logging.getLogger(__name__)
STALE_COMMAND = (
    "Switchboard does not know /{name}: this command may be from an older version. "
    "Try /workflow help; an admin can run `switchboard discord sync-commands` to refresh the list."
)
DEFAULT_API = discord.http.Route.BASE
DEFAULT_GATEWAY = DiscordWebSocket.DEFAULT_GATEWAY
# Switchboard sends no voice: skip discord.py's start-up warnings about the voice libraries.
discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False


def point_at(settings: Settings) -> None:
    """Aim discord.py at the configured REST and gateway URLs (class attributes read at each request)."""
    discord.http.Route.BASE = (settings.discord_api_url or DEFAULT_API).rstrip("/")
    gateway = settings.discord_gateway_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway) if gateway else DEFAULT_GATEWAY


class SwitchboardTree(app_commands.CommandTree[Any]):
    """The command tree, answering every command: a stale or unknown one gets an ephemeral reply."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.CommandNotFound):
            # Discord still shows a command this bot no longer registers (or not yet, before a sync).
            log.info("unknown application command /%s from Discord; answered as stale", error.name)
            text = STALE_COMMAND.format(name=" ".join([*error.parents, error.name]))
        else:
            # Failures inside our handlers are answered by Interactions.guarded; what reaches here is
            # discord.py refusing the call before it (a bad option type, say).
            name = interaction.command.name if interaction.command else "?"
            log.warning("Discord could not call /%s: %s", name, error)
            text = f"Switchboard could not run this command: {error}"
        await answer_once(interaction, text)


async def answer_once(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer, as the first response or a follow-up; an expired interaction is only logged."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not answer Discord interaction %s: %s", interaction.id, exc)


class SwitchboardBot(commands.Bot):
    """The bot: the ``/workflow`` tree, persistent buttons, and modal submits routed to ``switchboard``."""

    def __init__(self, switchboard: Interactions | None = None) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            # Guilds: channel and role names. Messages (and the privileged Message Content intent): what
            # users write to the bot in DMs, mentions and support channels, and agents in card threads.
            intents=discord.Intents(guilds=True, guild_messages=True, dm_messages=True, message_content=True),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),  # card text never pings @everyone
            guild_ready_timeout=0.5,  # "ready" waits this long after the last GUILD_CREATE; we need none
            max_ratelimit_timeout=30.0,  # longer 429 waits go back to the outbox instead of blocking here
            tree_cls=SwitchboardTree,
        )
        self.switchboard = switchboard
        self.tree.add_command(WorkflowGroup())
        self.tree.add_command(approvals_command)
        self.tree.add_command(runners_command)
        self.tree.add_command(human_command)
        self.tree.add_command(agent_command)
        self.tree.add_command(queue_command)
        self.tree.add_command(ConversationGroup())

    async def setup_hook(self) -> None:
        self.add_dynamic_items(CardButton, UiButton)

    async def on_message(self, message: discord.Message) -> None:
        # Replaces commands.Bot.on_message: Switchboard has no prefix commands, only conversations.
        if self.switchboard is not None:
            await self.switchboard.message(self, message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        sb = self.switchboard
        data: Any = interaction.data or {}
        custom_id = str(data.get("custom_id", ""))
        if sb is None or not custom_id.startswith("sb"):
            return
        if interaction.type is discord.InteractionType.modal_submit:
            await sb.guarded(interaction, sb.submit(interaction))
        elif interaction.type is discord.InteractionType.component and not _shows(
            interaction.message, custom_id
        ):
            # discord.py dispatches a dynamic item only if the message still shows it; a click from a
            # client that has not redrawn an edited card would go unanswered. Answer it here instead.
            if match := re.fullmatch(CARD_TEMPLATE, custom_id):
                await sb.guarded(interaction, sb.click(interaction, match.group(0)))
            elif match := re.fullmatch(UI_TEMPLATE, custom_id):
                await sb.guarded(interaction, sb.ui(interaction, match["action"], match["arg"]))
            else:
                await answer_once(interaction, UNKNOWN_BUTTON)
        elif interaction.type is discord.InteractionType.component and not (
            re.fullmatch(CARD_TEMPLATE, custom_id) or re.fullmatch(UI_TEMPLATE, custom_id)
        ):
            # A button of ours that no dynamic item matches (an older card's layout): discord.py drops it.
            await answer_once(interaction, UNKNOWN_BUTTON)


def _shows(message: discord.Message | None, custom_id: str) -> bool:
    """Whether the message (as Discord sent it with the click) still has a component with this id."""
    found: list[Any] = list(message.components) if message else []
    while found:
        component = found.pop()
        if getattr(component, "custom_id", None) == custom_id:
            return True
        found.extend(getattr(component, "children", []))
    return False
