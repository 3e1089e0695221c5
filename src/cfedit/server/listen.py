"""The socket the web editor listens on, and the HTTP server (uvicorn) that serves the app on it.

:func:`bind` takes the address before anything is announced, so a port in use or an address that is not this
machine's is one :class:`~cfedit.errors.CfeditError`, never a "serving at" line followed by the server's own
error. :func:`serve` runs uvicorn on that socket with the limits that keep it standing under many clients.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket

from cfedit.errors import CfeditError

MAX_CONNECTIONS = 512  # connections at once (a browser opens at most 256, to all sites together); past them uvicorn answers 503
KEEP_ALIVE = 5  # seconds an idle kept-alive connection stays open
MAX_HEADER_BYTES = 16 << 10  # a request line and headers larger than this are refused (h11's incomplete event size)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (port 0: one the system picks), or a CfeditError that says why
    not: an unknown host or address, an address of another machine, a port in use or reserved."""
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if re.fullmatch(r"[\d.]+", host) and not _is_ipv4(host):  # 256.1.1.1 is no name to look up either
        raise CfeditError(f"cannot listen on {where}: --host {host!r} is not a valid IPv4 address")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as e:
        reason = e.strerror if isinstance(e, socket.gaierror) else str(e)
        raise CfeditError(f"cannot listen on {where}: --host {host!r} is not an address or known host name ({reason})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a port left in TIME_WAIT is reused
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise CfeditError(f"cannot listen on {where}: the port is in use (another server?); give another --port") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise CfeditError(f"cannot listen on {where}: {host} is not an address of this machine; give another --host") from None
        if e.errno == errno.EACCES:
            raise CfeditError(f"cannot listen on {where}: the port is reserved; give a --port from 1024 up") from None
        raise CfeditError(f"cannot listen on {where}: {e.strerror or e}") from None
    return sock


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def serve(app, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` (from :func:`bind`) until Ctrl-C: uvicorn's HTTP/1.1 (h11), at most
    :data:`MAX_CONNECTIONS` at once, headers up to :data:`MAX_HEADER_BYTES`, idle connections closed after
    :data:`KEEP_ALIVE` seconds. Bodies are limited by the app (:class:`cfedit.server.limits.BodyLimit`)."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, http="h11", log_level="warning", limit_concurrency=MAX_CONNECTIONS,
                            timeout_keep_alive=KEEP_ALIVE, h11_max_incomplete_event_size=MAX_HEADER_BYTES)
    uvicorn.Server(config).run(sockets=[sock])
