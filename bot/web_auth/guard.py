"""Where requests may come from: loopback only in dev mode, and never from another site's page.

Dev mode trusts whoever connects, so it must be unreachable from the network (the bind address) and
from other web pages in the person's own browser (DNS rebinding names our loopback port under another
host name; the Host header gives it away, and Origin shows a cross-site page).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from bot.config import Settings
from bot.errors import BadInput, NotPermitted


def is_loopback(host: str) -> bool:
    """Whether a host name or address (no port) is this machine's loopback."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(settings: Settings) -> None:
    """Refuse, at start, settings that would put the trusting dev console on the network."""
    if not settings.console:
        return
    if settings.auth == "dev" and not is_loopback(settings.host):
        raise BadInput(
            f"SWITCHBOARD_HOST={settings.host} is not a loopback address, and the console's dev sign-in "
            "(SWITCHBOARD_AUTH=dev) lets anyone who reaches it act as any user. Set SWITCHBOARD_AUTH=oidc "
            "(with SWITCHBOARD_OIDC_ISSUER and SWITCHBOARD_OIDC_CLIENT_ID), set SWITCHBOARD_CONSOLE=false, "
            "or bind SWITCHBOARD_HOST=127.0.0.1."
        )
    if settings.auth == "oidc":
        missing = [
            name
            for name, value in (
                ("SWITCHBOARD_OIDC_ISSUER", settings.oidc_issuer),
                ("SWITCHBOARD_OIDC_CLIENT_ID", settings.oidc_client_id),
            )
            if not value
        ]
        if missing:
            raise BadInput(f"SWITCHBOARD_AUTH=oidc needs {' and '.join(missing)}.")
    if settings.public_url and urlsplit(settings.public_url).scheme not in ("http", "https"):
        raise BadInput(
            "SWITCHBOARD_PUBLIC_URL must start with https:// (or http:// on a laptop); "
            f"got {settings.public_url!r}."
        )


def host_name(host: str) -> str:
    """The name part of a Host header (``[::1]:8080`` gives ``::1``)."""
    return urlsplit(f"//{host}").hostname or ""


def check_request(settings: Settings, host: str, origin: str | None) -> None:
    """Refuse a request whose Host or Origin does not name this console (``NotPermitted``)."""
    if settings.auth == "dev" and not is_loopback(host_name(host)):
        raise NotPermitted(
            f"This dev console answers only at a loopback address (127.0.0.1, localhost), not {host!r}. "
            "A page that reached it under another name was refused (DNS rebinding)."
        )
    if origin is None:
        return  # not sent by a browser page (curl, tests); cookies and CSRF tokens still apply
    allowed = {f"http://{host}", f"https://{host}"}
    if settings.public_url:
        public = urlsplit(settings.public_url)
        allowed.add(f"{public.scheme}://{public.netloc}")
    if origin not in allowed:
        raise NotPermitted(f"This console only accepts pages served from {host}; {origin} was refused.")
