"""Who a Slack user is: display name (``users.info``) and user groups (``usergroups.list``), cached.

A command acks before anything here runs, but its reply still waits on these lookups, so they are
cached for ``ttl`` seconds and concurrent lookups of the same key share one API call. A workspace
without user groups (free plans answer ``paid_teams_only``) or an app without the ``usergroups:read``
scope still works: its users simply have no groups, and the log says why, once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.identity import Identity

log = logging.getLogger(__name__)
Groups = dict[str, frozenset[str]]  # user id -> group handles and names


class TtlCache:
    """Values by key for ``ttl`` seconds; callers asking for a key being fetched share the fetch."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, tuple[float, asyncio.Future[Any]]] = {}

    async def get(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        entry = self._entries.get(key)
        if entry is None or entry[0] < self.clock():
            if len(self._entries) > 10_000:  # a bound, not an LRU: a busy workspace refetches sooner
                self._entries.clear()
            future: asyncio.Future[Any] = asyncio.ensure_future(fetch())
            entry = (self.clock() + self.ttl, future)
            self._entries[key] = entry
        try:
            return await asyncio.shield(entry[1])
        except Exception:
            if self._entries.get(key) is entry:  # never cache a failure
                del self._entries[key]
            raise


class SlackDirectory:
    """Maps a Slack user to an ``Identity``; lookups that fail degrade to the id and no groups."""

    def __init__(self, client: AsyncWebClient, admins: list[str], ttl: float = 300.0) -> None:
        self.client = client
        self.admins = set(admins)
        self.names = TtlCache(ttl)
        self.groups = TtlCache(ttl)
        self._warned: set[str] = set()

    async def identity(self, team_id: str, user_id: str, fallback_name: str = "") -> Identity:
        """The identity of ``user_id`` in ``team_id`` (names and groups from the cache when fresh)."""
        name, groups = await asyncio.gather(
            self.names.get(user_id, lambda: self._name(user_id, fallback_name)),
            self.groups.get(team_id, lambda: self._groups(team_id)),
        )
        return Identity(
            platform="slack",
            workspace=team_id,
            user_id=user_id,
            name=name,
            groups=groups.get(user_id, frozenset()),
            admin=f"slack:{user_id}" in self.admins,
        )

    def warm(self, team_id: str) -> asyncio.Future[Any]:
        """Fetch the team's groups now, so the first command does not wait for them."""
        return asyncio.ensure_future(self.groups.get(team_id, lambda: self._groups(team_id)))

    async def _name(self, user_id: str, fallback: str) -> str:
        try:
            user = (await self.client.users_info(user=user_id))["user"]
        except (SlackApiError, OSError, TimeoutError) as exc:
            self._warn("users.info", exc, "names show as user ids; add the users:read scope")
            return fallback or user_id
        profile = user.get("profile") or {}
        return str(profile.get("display_name") or user.get("real_name") or user.get("name") or user_id)

    async def _groups(self, team_id: str) -> Groups:
        try:
            listed = await self.client.usergroups_list(include_users=True, team_id=team_id)
            members: dict[str, set[str]] = {}
            for group in listed.get("usergroups") or []:
                users = group.get("users")
                if users is None:  # some workspaces leave the members out; ask for them
                    users = (await self.client.usergroups_users_list(usergroup=group["id"]))["users"]
                for user in users:
                    members.setdefault(user, set()).update(_group_names(group))
        except (SlackApiError, OSError, TimeoutError) as exc:
            self._warn("usergroups.list", exc, "group permissions will not match Slack users")
            return {}
        return {user: frozenset(names) for user, names in members.items()}

    def _warn(self, method: str, exc: Exception, effect: str) -> None:
        error = exc.response.get("error") if isinstance(exc, SlackApiError) else repr(exc)
        if method not in self._warned:
            self._warned.add(method)
            needed = exc.response.get("needed") if isinstance(exc, SlackApiError) else None
            scope = f" (needs the {needed} scope; add it and reinstall the app)" if needed else ""
            log.warning("Slack %s failed: %s%s; %s", method, error, scope, effect)


def _group_names(group: dict[str, Any]) -> set[str]:
    # Permissions name a group by its @handle (group:release-managers); the display name works too.
    return {str(n) for n in (group.get("handle"), group.get("name")) if n}
