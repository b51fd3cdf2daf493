"""Who a web sign-in is: a console user picked in dev mode, or the chat identity an ID token names.

A Slack ID token carries the Slack user and team ids, so that person *is* their Slack identity, with the
groups Slack gives them (through the Slack adapter's directory, when Slack is configured). Any other
provider's token is looked up by one claim (``SWITCHBOARD_OIDC_CLAIM``, the e-mail by default) in
``SWITCHBOARD_OIDC_USERS``, which names the identity: ``console:alice``, ``slack:U024BE7LH``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bot.config import Settings
from bot.errors import BadInput, NotPermitted
from bot.identity import Identity

# (workspace, user id, display name to fall back on) -> the identity with its groups
Directory = Callable[[str, str, str], Awaitable[Identity]]
SLACK_USER = "https://slack.com/user_id"
SLACK_TEAM = "https://slack.com/team_id"


def console_user(settings: Settings, name: str) -> Identity:
    """The console user ``name`` with the groups configured for them; admin per settings.admins."""
    groups = settings.console_users.get(name)
    if groups is None:
        users = ", ".join(sorted(settings.console_users)) or "none"
        raise BadInput(
            f"Unknown console user '{name}'. Users: {users} (configure SWITCHBOARD_CONSOLE_USERS)."
        )
    return Identity("console", "console", name, name, frozenset(groups), f"console:{name}" in settings.admins)


async def from_claims(
    settings: Settings, claims: Mapping[str, Any], directories: Mapping[str, Directory]
) -> Identity:
    """The identity a verified ID token's claims name, or ``NotPermitted`` saying what to configure."""
    display = str(claims.get("name") or claims.get("email") or claims.get("sub") or "")
    slack_user = claims.get(SLACK_USER)
    if isinstance(slack_user, str) and slack_user:
        return await _platform_user(
            settings, "slack", str(claims.get(SLACK_TEAM) or ""), slack_user, display, directories
        )
    claim = settings.oidc_claim
    value = claims.get(claim)
    if not isinstance(value, str) or not value:
        raise NotPermitted(
            f"The sign-in provider sent no '{claim}' claim (SWITCHBOARD_OIDC_CLAIM), so it names nobody."
        )
    if claim == "email" and claims.get("email_verified") is False:
        raise NotPermitted(
            f"The provider has not verified the e-mail {value}, so it cannot name an identity."
        )
    users = {k.lower(): v for k, v in settings.oidc_users.items()}
    ref = users.get(value.lower())
    if ref is None:
        raise NotPermitted(
            f"{value} has no Switchboard identity. An admin maps it in SWITCHBOARD_OIDC_USERS, "
            f'e.g. {{"{value}": "console:alice"}} or {{"{value}": "slack:U024BE7LH"}}.'
        )
    platform, _, user_id = ref.partition(":")
    if platform == "console":
        return console_user(settings, user_id)
    if not user_id:
        raise BadInput(
            f"SWITCHBOARD_OIDC_USERS maps {value} to {ref!r}; write platform:id, e.g. slack:U024BE7LH."
        )
    return await _platform_user(settings, platform, "", user_id, display, directories)


async def _platform_user(
    settings: Settings,
    platform: str,
    workspace: str,
    user_id: str,
    display: str,
    directories: Mapping[str, Directory],
) -> Identity:
    lookup = directories.get(platform)
    if lookup is not None:
        return await lookup(workspace, user_id, display)
    # The platform is not configured here, so no groups are known; the admin list still applies.
    return Identity(
        platform,
        workspace,
        user_id,
        display or user_id,
        frozenset(),
        f"{platform}:{user_id}" in settings.admins,
    )
