"""``switchboard discord sync-commands [--guild ID]``: register ``/workflow`` with Discord, deliberately.

Discord allows 200 command creates per day per guild, so the bot never syncs at start; this command
does, once per deploy (or after changing the commands). With ``--guild`` the commands are copied to that
one server and show up at once (good while trying things out); without it they are registered globally,
for every server the bot is in.
"""

from __future__ import annotations

import argparse
from typing import Any

from bot.config import Settings
from bot.errors import BadInput, UpstreamUnavailable


async def sync_commands(settings: Settings, args: argparse.Namespace) -> int:
    """Log in over REST (no gateway), sync the command tree, print what was synced."""
    import aiohttp
    import discord

    from bot.platforms.discord.client import SwitchboardBot, point_at

    if not settings.discord_token:
        raise BadInput("set DISCORD_TOKEN to the bot token (Developer Portal → your application → Bot)")
    point_at(settings)
    guild = discord.Object(id=args.guild) if args.guild else None
    bot = SwitchboardBot()
    async with bot:
        try:
            await bot.login(settings.discord_token.get_secret_value())
            if guild is not None:
                bot.tree.copy_global_to(guild=guild)
            synced = await bot.tree.sync(guild=guild)
        except discord.LoginFailure:
            raise BadInput(
                "Discord refused DISCORD_TOKEN; copy the bot token from the Developer Portal"
            ) from None
        except discord.Forbidden as exc:
            raise BadInput(
                f"Discord refused the sync ({exc.text}): invite the bot to guild {args.guild} with the "
                "bot and applications.commands scopes (see docs/discord.md)"
                if guild
                else f"Discord refused the sync ({exc.text})"
            ) from None
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(f"Discord: the sync failed: {exc}") from None
    where = f"to guild {args.guild} (available now)" if guild else "globally (every server the bot is in)"
    print(f"Synced {len(synced)} command(s) {where}:")
    for command in synced:
        print(f"  /{command.name}: {', '.join(_subcommands(command)) or command.description}")
    return 0


def _subcommands(command: Any) -> list[str]:
    return [option.name for option in getattr(command, "options", []) if hasattr(option, "options")]
