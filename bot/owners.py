"""Process identities for leases and claims, and telling whether the process behind one is gone."""

from __future__ import annotations

import os
import secrets
import socket


def new_owner() -> str:
    """``host:pid:nonce`` for this process (the nonce guards against a reused pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def is_dead(owner: str, me: str) -> bool:
    """Whether ``owner`` is a process on this host that no longer runs (never true for other hosts)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if owner == me or host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # The pid runs, but it may be a new process that reused it: a different nonce is not enough to
    # tell, so treat it as alive and let the claim time out.
    return False
