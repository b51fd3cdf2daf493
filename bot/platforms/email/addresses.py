"""Where an approver's e-mail goes: the mapping setting first, then the identity's own platform.

``SWITCHBOARD_EMAIL_ADDRESSES`` maps an identity ref (``console:alice``, ``slack:U024BE7LH``) or a bare
user name or id to an address; it covers console users and anyone whose platform has no e-mail. A Slack
identity not in the mapping is looked up with ``users.info``: its profile e-mail, which Slack shows only
to apps with the ``users:read.email`` scope.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings

log = logging.getLogger(__name__)


class Addresses:
    """Looks up (and remembers) the address of an identity ref; None when nothing knows it."""

    def __init__(self, settings: Settings) -> None:
        self.mapping = {k.lower(): v for k, v in settings.email_addresses.items()}
        token = settings.slack_bot_token
        self.slack = (
            AsyncWebClient(token=token.get_secret_value(), base_url=settings.slack_api_url) if token else None
        )
        self._found: dict[str, str] = {}

    async def of(self, ref: str) -> str | None:
        """The address for ``ref`` (``platform:user``)."""
        platform, _, user = ref.partition(":")
        mapped = self.mapping.get(ref.lower()) or self.mapping.get(user.lower())
        if mapped:
            return mapped
        if ref in self._found:
            return self._found[ref]
        if platform == "slack" and self.slack is not None:
            address = await self._slack(user)
            if address:
                self._found[ref] = address
            return address
        return None

    async def _slack(self, user: str) -> str | None:
        try:
            answer = await self.slack.users_info(user=user)  # type: ignore[union-attr]
        except SlackApiError as exc:
            log.warning("email: users.info for %s failed (%s)", user, exc.response.get("error"))
            return None
        profile = (answer.get("user") or {}).get("profile") or {}
        email = profile.get("email")
        if not email:
            log.warning("email: Slack shows no e-mail for %s; add the users:read.email scope", user)
        return str(email) if email else None
