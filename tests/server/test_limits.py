"""The server's limits on bodies, connections and Host names: the middlewares' accounting driven by hand, then a
real uvicorn server on 127.0.0.1 under many slow uploads (no trained run needed; a few seconds)."""

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cfedit.errors import CfeditError
from cfedit.server.limits import MAX_BODY_BYTES, SMALL_BODY, BodyLimit, HostCheck, server_names
from cfedit.server.listen import bind


# ---------------------------------------------------------------------------------------------- by hand
class Request:
    """One request driven by hand through the middleware: ``feed`` a chunk or ``leave``; what the app saw and
    what was sent back are kept."""

    def __init__(self, mw: BodyLimit, content_length: int | None = None):
        self.mw, self.inbox, self.sent, self.seen = mw, asyncio.Queue(), [], None
        headers = [(b"content-length", str(content_length).encode())] if content_length is not None else []
        self.task = asyncio.ensure_future(mw({"type": "http", "method": "POST", "path": "/", "headers": headers},
                                             self.inbox.get, self._send))

    async def _send(self, msg):
        self.sent.append(msg)

    async def feed(self, n: int, more: bool = True):
        await self.inbox.put({"type": "http.request", "body": b"x" * n, "more_body": more})
        await asyncio.sleep(0)  # the middleware takes it

    async def leave(self):
        await self.inbox.put({"type": "http.disconnect"})
        await self.task

    @property
    def status(self):
        return self.sent[0]["status"] if self.sent else None

    @property
    def headers(self):
        return {k.decode(): v.decode() for k, v in self.sent[0]["headers"]}


def app_that(record: list, fail: bool = False):
    async def app(scope, receive, send):
        msg = await receive()
        record.append((len(msg["body"]), msg["more_body"]))
        if fail:
            raise RuntimeError("the app failed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    return app


def test_a_body_counts_while_its_request_runs_then_is_given_back():
    async def go():
        seen = []
        mw = BodyLimit(app_that(seen), limit=10_000, timeout=5, budget=100_000)
        r = Request(mw)
        await r.feed(3000)
        await r.feed(2000)
        assert mw.held == 5000 and not seen
        await r.feed(1000, more=False)
        await r.task
        assert seen == [(6000, False)] and r.status == 200 and mw.held == 0
    asyncio.run(go())


def test_a_client_that_leaves_mid_body_gives_its_bytes_back():
    async def go():
        seen = []
        mw = BodyLimit(app_that(seen), limit=10_000, timeout=5, budget=100_000)
        a, b = Request(mw), Request(mw)
        await a.feed(4000)
        await b.feed(3000)
        assert mw.held == 7000
        await a.leave()
        assert mw.held == 3000 and not a.sent and not seen
        await b.leave()
        assert mw.held == 0
    asyncio.run(go())


def test_a_body_that_does_not_arrive_in_time_gets_408_and_its_bytes_back():
    async def go():
        mw = BodyLimit(app_that([]), limit=10_000, timeout=0.05, budget=100_000)
        r = Request(mw)
        await r.feed(4000)
        await asyncio.wait_for(r.task, 2)  # the client never sends the rest
        assert r.status == 408 and r.headers["connection"] == "close" and mw.held == 0
        assert "did not arrive within 0.05 s" in json.loads(r.sent[1]["body"])["detail"]
    asyncio.run(go())


def test_the_budget_turns_uploads_away_with_503_but_takes_small_bodies():
    async def go():
        seen = []
        mw = BodyLimit(app_that(seen), limit=1_000_000, timeout=5, budget=1_000_000)
        holder = Request(mw)
        await holder.feed(900_000)
        late = Request(mw)  # chunked: turned away at the chunk that would pass the budget
        await late.feed(SMALL_BODY)
        await late.feed(200_000)
        await late.task
        assert late.status == 503 and late.headers["retry-after"] == "5" and late.headers["connection"] == "close"
        announced = Request(mw, content_length=500_000)  # announced: turned away before a byte is read
        await announced.task
        assert announced.status == 503 and mw.held == 900_000
        small = Request(mw)
        await small.feed(2000, more=False)
        await small.task
        assert small.status == 200 and seen == [(2000, False)]
        await holder.feed(50_000, more=False)
        await holder.task
        assert holder.status == 200 and mw.held == 0
    asyncio.run(go())


def test_an_oversized_body_gets_413_and_a_failing_app_still_gives_bytes_back():
    async def go():
        mw = BodyLimit(app_that([]), limit=5000, timeout=5, budget=100_000)
        r = Request(mw)
        await r.feed(4000)
        await r.feed(4000)
        await r.task
        assert r.status == 413 and mw.held == 0
        failing = BodyLimit(app_that([], fail=True), limit=5000, timeout=5, budget=100_000)
        r = Request(failing)
        await r.feed(100, more=False)
        with pytest.raises(RuntimeError):
            await r.task
        assert failing.held == 0
    asyncio.run(go())


@pytest.mark.parametrize("host, allowed", [
    ("localhost", True), ("LOCALHOST:8000", True), ("localhost.:8000", True), ("127.0.0.1:8000", True), ("[::1]:8000", True),
    ("192.168.1.20:8000", True), ("box.lan:8000", True),
    ("attacker.example", False), ("attacker.example:8000", False), ("localhost.attacker.example", False),
    ("127.0.0.1.nip.io", False), ("", False), ("localhost:8000/x", False), ("[::1", False),
])
def test_the_host_header_must_name_the_server(host, allowed):
    """IP addresses, localhost and the names given are answered; any other name, as a DNS-rebinding page sends, is not."""
    assert HostCheck(None, names=("localhost", "box.lan")).allows(host) == allowed
    assert HostCheck(None, names=("*",)).allows(host) == (host != "" and "/" not in host and host != "[::1")


def test_server_names():
    assert server_names("127.0.0.1") == ("localhost",)
    assert server_names("0.0.0.0", ["Box.lan", "box.lan"]) == ("localhost", "box.lan")
    assert server_names("myhost", ["*"]) == ("localhost", "myhost", "*")
    for bad in ("box.lan:8000", "http://box.lan", "", "box lan"):
        with pytest.raises(CfeditError, match="give a host name alone"):
            server_names("127.0.0.1", [bad])


def test_a_refused_host_is_told_how_to_allow_it():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from cfedit.server.limits import add_limits

    app = FastAPI()
    app.get("/")(lambda: {"ok": True})
    add_limits(app, names=("localhost",))
    client = TestClient(app, base_url="http://localhost")
    assert client.get("/").status_code == 200
    r = client.get("/", headers={"host": "attacker.example"})
    assert r.status_code == 400 and "--allowed-host" in r.json()["detail"] and "'attacker.example'" in r.json()["detail"]


# ---------------------------------------------------------------------------------------------- binding
def test_bind_says_why_it_cannot_listen():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CfeditError, match=f"cannot listen on 127.0.0.1:{port}: the port is in use"):
            bind("127.0.0.1", port)
    with pytest.raises(CfeditError, match="'256.1.1.1' is not a valid IPv4 address"):
        bind("256.1.1.1", 8000)
    with pytest.raises(CfeditError, match="192.0.2.1 is not an address of this machine"):
        bind("192.0.2.1", 0)  # TEST-NET-1: documentation only, no machine's
    with bind("127.0.0.1", 0) as sock:
        assert sock.getsockname()[1] > 0


# ---------------------------------------------------------------------------------------------- a real server
SERVER = """
import sys
from fastapi import FastAPI, Request
from cfedit.server.limits import add_limits
from cfedit.server.listen import bind, serve

app = FastAPI()
@app.post("/api/edit")
async def edit(request: Request) -> dict:
    return {"bytes": len(await request.body())}
app.get("/api/model")(lambda: {"ok": True})
add_limits(app, timeout=float(sys.argv[1]), budget=int(sys.argv[2]))
sock = bind("127.0.0.1", 0)
print(sock.getsockname()[1], flush=True)
serve(app, sock)
"""
N_SLOW = 24  # clients, each sending 6.9 MB of a chunked body and never the end
SLOW_BYTES = 6_900_000
TEST_BUDGET = 12 << 20  # one body of 6.9 MB fits, two do not
TEST_TIMEOUT = 1.5


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def http(port: int, head: str, body: bytes = b"", timeout: float = 5) -> tuple[int, dict, bytes]:
    """One request on its own connection: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(_headers(data).get("content-length", 0)):
            more = s.recv(65536)
            if not more:
                break
            data += more
    return int(data.split(b" ", 2)[1]), _headers(data), data.split(b"\r\n\r\n", 1)[1]


def _headers(data: bytes) -> dict:
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines if ":" in ln)}


def slow_upload(port: int, answers: list) -> None:
    """6.9 MB of a chunked body, then nothing: the answer's status line, or how the connection ended."""
    frame = b"%x\r\n" % 65536 + b" " * 65536 + b"\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TEST_TIMEOUT + 3) as s:
            s.sendall(b"POST /api/edit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            for _ in range(SLOW_BYTES // 65536):
                s.sendall(frame)
            answers.append(s.recv(100).split(b"\r\n")[0].decode())
    except OSError as e:  # turned away while sending: the server closed the connection
        answers.append(type(e).__name__)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_many_slow_uploads_keep_memory_bounded_and_the_server_answering():
    """24 clients send 6.9 MB each of a body they never finish (166 MB in all). The server holds at most its
    budget (12 MiB here) of them: its memory grows by less than 3 x the budget + 32 MB, a normal request is
    answered while the budget is full, an upload then gets 503 with Retry-After, the held bodies get 408 after the
    body timeout, and once the clients are gone the memory is back within 10 MB of where it started."""
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(TEST_TIMEOUT), str(TEST_BUDGET)], stdout=subprocess.PIPE, text=True)
    done = threading.Event()
    try:
        port = int(server.stdout.readline())
        assert http(port, "GET /api/model HTTP/1.1\r\nHost: localhost\r\n")[0] == 200
        time.sleep(0.2)
        baseline, peak = rss_mb(server.pid), []

        def watch():
            while not done.is_set():
                peak.append(rss_mb(server.pid))
                time.sleep(0.01)
        watcher = threading.Thread(target=watch)
        watcher.start()
        answers: list[str] = []
        clients = [threading.Thread(target=slow_upload, args=(port, answers)) for _ in range(N_SLOW)]
        for c in clients:
            c.start()
        upload = f"POST /api/edit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {MAX_BODY_BYTES}\r\n"
        deadline = time.monotonic() + TEST_TIMEOUT
        while (turned := _announce(port, upload))[0] != 503 and time.monotonic() < deadline:
            pass
        # meanwhile, with the budget full: a page load and a small request are answered
        page = http(port, "GET /api/model HTTP/1.1\r\nHost: localhost\r\n")[0]
        small = b'{"example": 0}'
        status, _, body = http(port, f"POST /api/edit HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(small)}\r\n", small)
        for c in clients:
            c.join(TEST_TIMEOUT + 5)
        time.sleep(0.3)
        after = rss_mb(server.pid)
    finally:
        done.set()
        server.terminate()
        server.wait(10)
    assert max(peak) - baseline < 3 * TEST_BUDGET / 2**20 + 32, (baseline, max(peak))
    assert after - baseline < 10, (baseline, after)
    assert turned[0] == 503 and turned[1]["retry-after"] == "5" and b"retry in 5 s" in turned[2], turned
    assert page == 200 and status == 200 and json.loads(body) == {"bytes": len(small)}
    assert all(not c.is_alive() for c in clients) and len(answers) == N_SLOW
    assert any("408" in a for a in answers) and any("503" in a or "Error" in a for a in answers), answers


def _announce(port: int, head: str) -> tuple[int, dict, bytes]:
    """An upload announced at the size limit, its body not sent: 503 when the budget is full; else it is taken and
    waits for the body, so the connection is dropped after a moment."""
    try:
        return http(port, head, timeout=0.3)
    except TimeoutError:
        return 0, {}, b""
