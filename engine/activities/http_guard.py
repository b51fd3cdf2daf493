"""Where an http step may not go: Switchboard's own listener, link-local and cloud-metadata addresses.

A workflow's url may come from chat, so without a guard a step could read the console's API on
loopback or a cloud instance's credentials at 169.254.169.254. Private addresses stay allowed: calling
internal services is what ops workflows do. ``SWITCHBOARD_HTTP_ALLOW`` lifts a refusal and
``SWITCHBOARD_HTTP_DENY`` adds more; each entry is a CIDR, an address or a host name, with an optional
``:port`` (``10.0.0.0/8``, ``169.254.169.254``, ``[::1]:8080``, ``vault.internal:8200``).

The check is made on the addresses a name resolves to, by the resolver the request then connects
with (``GuardedResolver``), so a name that resolves differently the second time (DNS rebinding) is
checked on what is actually dialled. Address literals, which aiohttp never resolves, and every
redirect are checked by ``HttpGuard.check_url`` before the request leaves.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from yarl import URL

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Link-local (where clouds serve instance metadata and credentials) and AWS's IPv6 metadata address.
METADATA = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
# Every address a listener on loopback or on all interfaces answers at from this machine.
LOOPBACK = ("127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128")


class Refused(Exception):
    """A request the guard will not send; the message names the address and the setting to change."""


@dataclass(frozen=True)
class Rule:
    """One entry: a network or a host name, and a port (None: every port); ``why`` words a refusal."""

    network: IpNetwork | None
    host: str | None
    port: int | None
    why: str

    def matches(self, host: str, address: IpAddress | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == host.lower().rstrip(".")
        return address is not None and self.network is not None and address in self.network


def parse_rule(entry: str, why: str = "") -> Rule:
    """``10.0.0.0/8``, ``169.254.169.254``, ``[::1]:8080``, ``::1``, ``host`` or ``host:port``."""
    text = entry.strip()
    port: int | None = None
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        text = inner
        if rest.startswith(":"):
            port = _port(rest[1:], entry)
    elif text.count(":") == 1:
        text, _, tail = text.partition(":")
        port = _port(tail, entry)
    try:
        return Rule(ipaddress.ip_network(text, strict=False), None, port, why)
    except ValueError:
        pass
    if not text or any(c in text for c in "/ @\\"):
        raise ValueError(f"'{entry}' is not a CIDR, an address or a host name (with an optional :port)")
    return Rule(None, text.lower().rstrip("."), port, why)


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"'{entry}' has a port that is not a number from 1 to 65535")
    return int(text)


@dataclass(frozen=True)
class HttpGuard:
    """The allow and deny rules; built once by the runtime from the settings."""

    deny: tuple[Rule, ...] = field(default_factory=lambda: default_denies())
    allow: tuple[Rule, ...] = ()

    def check(self, host: str, address: str | None, port: int) -> None:
        """Raise Refused if a request to ``host`` (dialled at ``address``) on ``port`` may not go."""
        ip = _address(address) if address is not None else None
        if any(rule.matches(host, ip, port) for rule in self.allow):
            return
        for rule in self.deny:
            if rule.matches(host, ip, port):
                bare = host.strip("[]")
                shown = f"[{bare}]" if ":" in bare else bare
                at = f" ({ip})" if ip is not None and str(ip) != bare else ""
                entry = f"{shown}:{port}" if rule.port is not None else bare
                raise Refused(
                    f"refused to send to {shown}:{port}{at}: {rule.why}; "
                    f"set SWITCHBOARD_HTTP_ALLOW={entry} to allow it"
                )

    def check_url(self, url: URL) -> None:
        """Check a url before it is sent: its host name, and the address itself when it is a literal."""
        host, port = url.host or "", url.port or (443 if url.scheme == "https" else 80)
        literal = _address(host.strip("[]"))
        self.check(host, str(literal) if literal is not None else None, port)


def default_denies(extra: Iterable[str] = ()) -> tuple[Rule, ...]:
    """The built-in refusals (link-local, cloud metadata), then ``extra`` (SWITCHBOARD_HTTP_DENY)."""
    rules = [parse_rule(net, "a link-local or cloud-metadata address") for net in METADATA]
    rules += [parse_rule(entry, f"SWITCHBOARD_HTTP_DENY names {entry}") for entry in extra]
    return tuple(rules)


def own_listener(host: str, port: int) -> tuple[Rule, ...]:
    """Rules for Switchboard's own listener at ``host:port``: that address and every loopback alias,
    and this machine's own addresses when it listens on all interfaces."""
    why = f"that is Switchboard's own listener (SWITCHBOARD_HOST={host}, port {port})"
    networks = list(LOOPBACK)
    literal = _address(host.strip("[]"))
    if literal is not None and not literal.is_unspecified:
        networks.append(str(literal))
    elif literal is None:
        networks.append(host)  # a name: refused by name, and loopback covers "localhost"
    else:
        networks += _machine_addresses()
    return tuple(parse_rule(f"[{n}]:{port}" if ":" in n else f"{n}:{port}", why) for n in networks)


def _machine_addresses() -> list[str]:
    """This machine's addresses: its host name's, and the source address of its routes out (a UDP
    socket's connect picks a route and sends nothing)."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        found.update(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
    for family, documentation in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((documentation, 9))
                found.add(str(probe.getsockname()[0]))
        except OSError:
            continue  # no route for this family
    return sorted(address.partition("%")[0] for address in found)


def _address(text: str) -> IpAddress | None:
    """An address literal, with IPv4-mapped IPv6 (``::ffff:127.0.0.1``) read as the IPv4 it maps."""
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip
