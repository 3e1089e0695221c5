"""What keeps the web editor standing under many, large or slow clients: two ASGI middlewares in front of the app.

:class:`BodyLimit` reads each request's body before the application does, under three limits: the bytes of one
body (413), the time for all of it to arrive (408), and the bytes of all bodies held at once, every connection
together (503 with ``Retry-After``). A body's bytes count from its first byte until its request ends, however it
ends (answered, refused, timed out, or the client gone), so memory held for uploads stays within the budget; once
none is held, the pages freed are handed back to the system, so the server's memory returns to where it was.

:class:`HostCheck` answers only requests whose ``Host`` header names this server, so that a web page elsewhere
cannot reach it through a name it controls and points at this machine (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import ipaddress
import re
from collections.abc import Iterable

from fastapi.responses import JSONResponse

from cfedit.errors import CfeditError
from cfedit.server.images import MAX_UPLOAD_BYTES

MAX_BODY_BYTES = (MAX_UPLOAD_BYTES * 4) // 3 + (64 << 10)  # a request body: a base64 image at the limit plus the rest
BODY_TIMEOUT = 60.0  # seconds for a whole request body to arrive (a 7 MB upload at 1 Mbit/s takes 56 s)
UPLOAD_BUDGET = 64 << 20  # bytes of request bodies held at once, all connections together (9 uploads at the limit)
SMALL_BODY = 64 << 10  # a body up to this size (an edit of an example, a query) is never turned away by the budget
RETRY_AFTER = 5  # seconds a client turned away by the budget is told to wait
TRIM_AFTER = 1 << 20  # a body at least this large, once no body is held, has freed memory handed back to the system
LOOPBACK_NAMES = ("localhost",)  # host names always answered, besides IP addresses


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes (announced, or counted as it arrives) gets a 413, one
    that does not arrive whole within ``timeout`` seconds a 408, one that would take the bytes held by all
    requests past ``budget`` a 503 with ``Retry-After`` (bodies up to :data:`SMALL_BODY` are always taken: the
    connection limit bounds them). 408 and 503 close the connection. :attr:`held` is the bytes held now."""

    def __init__(self, app, *, limit: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT, budget: int = UPLOAD_BUDGET,
                 retry_after: int = RETRY_AFTER):
        self.app, self.limit, self.timeout, self.budget, self.retry_after = app, limit, timeout, budget, retry_after
        self.held = 0  # bytes of request bodies held now, every connection together (one event loop: no lock)

    def _fits(self, mine: int, more: int) -> bool:
        return mine + more <= SMALL_BODY or self.held + more <= self.budget

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        size = dict(scope.get("headers") or []).get(b"content-length")
        if size is not None and (not size.isdigit() or int(size) > self.limit):
            return await self._refuse(scope, receive, send, 413)
        if size is not None and not self._fits(0, int(size)):
            return await self._refuse(scope, receive, send, 503)
        chunks: list[bytes] = []
        mine, refusal = 0, None
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    more = True
                    while more:
                        msg = await receive()
                        if msg["type"] != "http.request":  # the client left: its bytes are given back below
                            return None
                        chunk = msg.get("body", b"")
                        if mine + len(chunk) > self.limit:
                            refusal = 413
                            break
                        if not self._fits(mine, len(chunk)):
                            refusal = 503
                            break
                        chunks.append(chunk)
                        mine += len(chunk)
                        self.held += len(chunk)
                        more = msg.get("more_body", False)
            except TimeoutError:
                refusal = 408
            if refusal is not None:
                chunks.clear()
                return await self._refuse(scope, receive, send, refusal)
            body, sent = b"".join(chunks), False
            chunks.clear()

            async def replay():
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            return await self.app(scope, replay, send)
        finally:
            self.held -= mine
            if mine >= TRIM_AFTER and self.held == 0:
                _give_back_memory()

    async def _refuse(self, scope, receive, send, status: int) -> None:
        headers = {"connection": "close"} if status in (408, 503) else {}
        if status == 413:
            detail = f"the request body is larger than {self.limit:,} bytes"
        elif status == 408:
            detail = f"the request body did not arrive within {self.timeout:g} s"
        else:
            detail = f"the server holds as many uploads as it takes at once; retry in {self.retry_after} s"
            headers["retry-after"] = str(self.retry_after)
        response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
        await response(scope, receive, send)


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc's
    except (AttributeError, OSError):
        return None


def _give_back_memory() -> None:
    """Hand the pages of freed request bodies back to the system (glibc's ``malloc_trim``; nothing elsewhere).
    The allocator keeps them otherwise, and the server's memory would stay at its peak after the clients left."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


_HOST = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[^\[\]:/@\s]+)(?::\d{1,5})?")


class HostCheck:
    """ASGI middleware: answers a request whose ``Host`` header gives an IP address or one of ``names`` (case
    and a port ignored; ``"*"``: any name), and refuses any other with a 400. A page on attacker.example that
    points its name at this machine (DNS rebinding) sends ``Host: attacker.example``; a browser that reaches the
    server by its address sends that address, from which no other site can read."""

    def __init__(self, app, *, names: Iterable[str]):
        self.app = app
        self.names = frozenset(n.lower().rstrip(".") for n in names)

    def allows(self, header: str | None) -> bool:
        m = _HOST.fullmatch((header or "").lower())
        if m is None:
            return False
        name = m["name"].rstrip(".")
        if "*" in self.names or name in self.names:
            return True
        try:
            ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
        except ValueError:
            return False
        return True

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if self.allows(header):
            return await self.app(scope, receive, send)
        detail = (f"this server does not answer to the host {header[:100]!r}; its names are "
                  f"{', '.join(sorted(self.names))} and its IP addresses (cfedit serve --allowed-host NAME adds one)")
        await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)


def add_limits(app, *, names: Iterable[str] = LOOPBACK_NAMES, timeout: float = BODY_TIMEOUT, budget: int = UPLOAD_BUDGET) -> None:
    """Put both middlewares in front of a Starlette or FastAPI ``app``: the Host check first (outermost, so a
    refused request sends no body anyone reads), then the body limits (:data:`MAX_BODY_BYTES` for one body)."""
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES, timeout=timeout, budget=budget)
    app.add_middleware(HostCheck, names=names)


def server_names(host: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The names the server at ``host`` answers to, besides IP addresses: localhost, ``host`` when it is a name,
    and the ``extra`` names (``--allowed-host``)."""
    extra = tuple(extra)
    for name in extra:
        if name != "*" and not re.fullmatch(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?", name):
            raise CfeditError(f"--allowed-host {name[:100]!r}: give a host name alone (no scheme, port or path), e.g. box.lan")
    names = [*LOOPBACK_NAMES, host, *extra]
    return tuple(dict.fromkeys(n.lower() for n in names if n and not _is_address(n)))


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True
