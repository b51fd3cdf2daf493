"""Discord API payloads as Discord sends them (API v10, the fields discord.py 2.7 reads), for the fake.

One guild with channels #ops, #approvals, #locked, #agents and #help, roles @everyone, release-managers and on-call, and
two members: alice (release-managers) and bob (no role).
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

APP_ID = "1300000000000000001"
BOT_ID = "1300000000000000002"
GUILD = "1300000000000000100"
OPS = "1300000000000000101"
APPROVALS = "1300000000000000102"
LOCKED = "1300000000000000103"
AGENTS = "1300000000000000104"  # the support agents' channel (handover cards)
HELP = "1300000000000000105"  # a support channel: every message there goes to the assistant
RELEASE_MANAGERS = "1300000000000000201"
ON_CALL = "1300000000000000202"
ALICE = "1300000000000000301"
BOB = "1300000000000000302"
COMMAND_ID = "1300000000000000401"
JOINED = "2024-01-01T00:00:00+00:00"
NAMES = {BOT_ID: "switchboard", ALICE: "alice", BOB: "bob"}
MEMBER_ROLES = {ALICE: [RELEASE_MANAGERS], BOB: []}


def user(user_id: str) -> Json:
    return {
        "id": user_id,
        "username": NAMES[user_id],
        "global_name": NAMES[user_id].capitalize(),
        "discriminator": "0",
        "avatar": None,
        "bot": user_id == BOT_ID,
        "public_flags": 0,
        "flags": 0,
    }


def member(user_id: str) -> Json:
    return {
        "user": user(user_id),
        "roles": MEMBER_ROLES.get(user_id, []),
        "nick": None,
        "avatar": None,
        "joined_at": JOINED,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "permissions": "2248473465835073",
        "communication_disabled_until": None,
    }


def role(role_id: str, name: str, position: int) -> Json:
    return {
        "id": role_id,
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": "2248473465835073" if position == 0 else "0",
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def roles() -> list[Json]:
    return [
        role(GUILD, "@everyone", 0),
        role(RELEASE_MANAGERS, "release-managers", 1),
        role(ON_CALL, "on-call", 2),
    ]


def text_channel(channel_id: str, name: str, position: int) -> Json:
    return {
        "id": channel_id,
        "type": 0,
        "guild_id": GUILD,
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "default_auto_archive_duration": 1440,
        "flags": 0,
    }


def channels() -> list[Json]:
    return [
        text_channel(OPS, "ops", 0),
        text_channel(APPROVALS, "approvals", 1),
        text_channel(LOCKED, "locked", 2),
        text_channel(AGENTS, "agents", 3),
        text_channel(HELP, "help", 4),
    ]


def thread(thread_id: str, parent: str, name: str, archive: int, now: str) -> Json:
    return {
        "id": thread_id,  # a thread started from a message has the message's id
        "type": 11,
        "guild_id": GUILD,
        "parent_id": parent,
        "owner_id": BOT_ID,
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": archive,
            "archive_timestamp": now,
            "locked": False,
            "create_timestamp": now,
        },
    }


def guild(all_channels: list[Json]) -> Json:
    return {
        "id": GUILD,
        "name": "Switchboard test",
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": ALICE,
        "region": None,
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": roles(),
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "nsfw_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "max_members": 500000,
        "max_video_channel_users": 25,
        "premium_progress_bar_enabled": False,
        "joined_at": JOINED,
        "large": False,
        "unavailable": False,
        "member_count": 3,
        "voice_states": [],
        "members": [member(BOT_ID), member(ALICE), member(BOB)],
        "channels": [c for c in all_channels if c["type"] != 11],
        "threads": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def application() -> Json:
    return {
        "id": APP_ID,
        "name": "Switchboard",
        "icon": None,
        "description": "Chat-ops workflows",
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": user(ALICE),
        "verify_key": "0" * 64,
        "team": None,
        "flags": 0,
        "summary": "",
        "rpc_origins": [],
        "tags": [],
        "interactions_endpoint_url": None,
        "bot": user(BOT_ID),
    }


def ready(gateway_url: str) -> Json:
    return {
        "v": 10,
        "user": user(BOT_ID),
        "guilds": [{"id": GUILD, "unavailable": True}],
        "session_id": "fake-session",
        "resume_gateway_url": gateway_url,
        "shard": [0, 1],
        "application": {"id": APP_ID, "flags": 0},
        "private_channels": [],
        "relationships": [],
        "presences": [],
        "user_settings": {},
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": [],
        "auth": {},
    }


def message(message_id: str, channel: str, body: Json, now: str, webhook: bool = False) -> Json:
    out: Json = {
        "id": message_id,
        "channel_id": channel,
        "guild_id": GUILD,
        "author": user(BOT_ID),
        "content": body.get("content") or "",
        "timestamp": now,
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": body.get("embeds") or [],
        "components": body.get("components") or [],
        "pinned": False,
        "type": 0,
        "flags": int(body.get("flags") or 0),
        "nonce": body.get("nonce"),
    }
    if webhook:
        out |= {"webhook_id": APP_ID, "application_id": APP_ID, "type": 20}
    return out


def user_message(
    message_id: str, channel: str, author: str, content: str, now: str, guild: bool, mentions: list[str]
) -> Json:
    """A MESSAGE_CREATE a person's message makes: in a server with their ``member`` (and each mention's),
    in a DM with no guild at all."""
    out = message(message_id, channel, {"content": content}, now)
    out["author"] = user(author)
    out["mentions"] = [{**user(m), **({"member": _bare(member(m))} if guild else {})} for m in mentions]
    if guild:
        out["member"] = _bare(member(author))
    else:
        del out["guild_id"]
    return out


def _bare(data: Json) -> Json:
    return {k: v for k, v in data.items() if k != "user"}  # a message's member comes without its user


def interaction(
    interaction_id: str, kind: int, data: Json, user_id: str, channel: Json, message: Json | None = None
) -> Json:
    payload: Json = {
        "id": interaction_id,
        "application_id": APP_ID,
        "type": kind,
        "data": data,
        "guild_id": GUILD,
        "guild": {"id": GUILD, "locale": "en-US", "features": []},
        "channel_id": channel["id"],
        "channel": channel,
        "member": member(user_id),
        "token": f"token-{interaction_id}",
        "version": 1,
        "app_permissions": "2248473465835073",
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": GUILD},
        "context": 0,
        "attachment_size_limit": 10_485_760,
    }
    if message is not None:
        payload["message"] = message
    return payload


def command_data(sub: str, options: dict[str, str], focused: str | None = None) -> Json:
    values = [
        {"type": 3, "name": name, "value": value, **({"focused": True} if name == focused else {})}
        for name, value in options.items()
    ]
    return {
        "id": COMMAND_ID,
        "name": "workflow",
        "type": 1,
        "options": [{"type": 1, "name": sub, "options": values}],
    }


def modal_data(custom_id: str, values: dict[str, str]) -> Json:
    rows = [
        {"type": 1, "id": n * 2 + 1, "components": [{"type": 4, "id": n * 2 + 2, "custom_id": k, "value": v}]}
        for n, (k, v) in enumerate(values.items())
    ]
    return {"custom_id": custom_id, "components": rows}
