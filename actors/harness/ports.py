"""Free loopback ports, so throwaway servers never collide with real ones or with each other."""

from __future__ import annotations

import socket
import threading

LOOPBACK = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()


def free_port(host: str = LOOPBACK) -> int:
    """Return a port nobody listens on right now.

    The kernel picks it; we remember what we handed out so two servers started by this process never get
    the same one. The port is not reserved: a server that fails with "Address already in use" is restarted
    on another port by its caller.
    """
    with _lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise OSError(f"no free port found on {host}")
