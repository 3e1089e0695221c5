"""Load test of the web editor: `cfedit serve` on a loopback port, N concurrent clients posting k-sample
edits (example images, the world's figure interventions in turn) for a fixed time; it stops by itself.

    python benchmarks/bench_serve.py [RUN] [--clients 16] [--seconds 30] [--k 8] [--threads 1] [--batch MS]

RUN defaults to runs/demo/editor (`cfedit demo --train`; `pretrained:backdoor` is the shipped editor). Prints
requests/s, latency percentiles and errors (any answer but 200, or a failed connection). Run it alone: it is meant
to measure the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def client(http: httpx.AsyncClient, i: int, bodies: list[dict], stop: float, lat: list, errors: list) -> None:
    j = 0
    while time.perf_counter() < stop:
        body = {**bodies[(i + j) % len(bodies)], "seed": i * 100_000 + j}
        t0 = time.perf_counter()
        try:
            r = await http.post("/api/edit", json=body)
            if r.status_code != 200:
                errors.append(f"{r.status_code}: {r.text[:200]}")
            else:
                lat.append(time.perf_counter() - t0)
        except httpx.HTTPError as e:
            errors.append(f"{type(e).__name__}: {e}")
        j += 1


async def load(url: str, clients: int, seconds: float, k: int) -> tuple[list, list, float]:
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=clients)) as http:
        model = (await http.get("/api/model")).json()
        n_ex = len((await http.get("/api/examples")).json()["examples"])
        if not n_ex:
            raise SystemExit("the run has no example images: serve a run of a world, or give --examples")
        factors = model["factors"]
        actions = [{f: vals[-1]} for f, vals in factors.items()] + [{f: vals[0]} for f, vals in factors.items()]
        bodies = [{"example": e % n_ex, "do": actions[e % len(actions)], "k": k} for e in range(4 * n_ex)]
        await asyncio.gather(*(http.post("/api/edit", json=b) for b in bodies[:clients]))  # warm-up (bounds memoised)
        lat, errors = [], []
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http, i, bodies, t0 + seconds, lat, errors) for i in range(clients)))
        return lat, errors, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", default="runs/demo/editor")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    ap.add_argument("--batch", type=float, default=0, help="the server's --batch (ms of request batching; 0: off)")
    a = ap.parse_args()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    server = subprocess.Popen([sys.executable, "-m", "cfedit", "serve", a.run, "--port", str(port), "--threads", str(a.threads),
                               *(["--batch", str(a.batch)] if a.batch else [])],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if server.poll() is not None:
                raise SystemExit(f"cfedit serve exited: {server.stderr.read().decode()[-2000:]}")
            try:
                httpx.get(url + "/api/model", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        lat, errors, dt = asyncio.run(load(url, a.clients, a.seconds, a.k))
    finally:
        server.terminate()
        server.wait(timeout=10)
    ms = np.asarray(lat) * 1e3
    n = len(lat) + len(errors)
    print(f"{a.clients} clients for {dt:.0f} s, k = {a.k} edits per request, server torch threads {a.threads}, {os.cpu_count()} cores"
          f"{f', batching {a.batch:g} ms' if a.batch else ''}")
    print(f"requests: {n} ({n / dt:.1f}/s, {len(lat) * a.k / dt:.0f} edited images/s); errors: {len(errors)}")
    if len(ms):
        print(f"latency of a successful request: p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms, "
              f"p99 {np.percentile(ms, 99):.0f} ms, max {ms.max():.0f} ms")
    for e in errors[:5]:
        print("error:", e)


if __name__ == "__main__":
    main()
