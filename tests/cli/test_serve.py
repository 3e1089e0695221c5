"""`cfedit serve`: an address it cannot listen on is one error line, and the server it starts answers only to its
own names (a real run, a real server on 127.0.0.1)."""

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.slow  # a trained run (tests/conftest.py)


def test_a_port_in_use_is_one_error_line(cli, tiny_backdoor_run):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = cli("serve", str(tiny_backdoor_run), "--port", str(port))
    assert code == 2 and "serving" not in out
    assert err.strip().splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: the port is in use (another server?); "
                                        "give another --port"]


@pytest.mark.parametrize("host, message", [
    ("256.1.1.1", "'256.1.1.1' is not a valid IPv4 address"),
    ("192.0.2.1", "192.0.2.1 is not an address of this machine"),
])
def test_an_address_it_cannot_listen_on_is_one_error_line(cli, tiny_backdoor_run, host, message):
    code, out, err = cli("serve", str(tiny_backdoor_run), "--host", host, "--port", "8000")
    assert code == 2 and "serving" not in out and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: cannot listen on {host}:8000: ") and message in err


def _get(port: int, host: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/model", headers={"Host": host})
    try:
        return urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_server_answers_only_to_its_names(tiny_backdoor_run):
    """localhost, IP addresses and --allowed-host names are answered; a DNS-rebinding name is refused with 400."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "cfedit", "serve", str(tiny_backdoor_run), "--port", str(port),
                               "--allowed-host", "box.lan"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = [server.stdout.readline()]
        while lines[-1] and "serving" not in lines[-1]:  # progress lines (threads) may come first
            lines.append(server.stdout.readline())
        assert f"at http://127.0.0.1:{port}/" in lines[-1], lines
        first = _get(port, f"localhost:{port}")  # the socket listens before the line is printed: no retry needed
        assert first == 200 and _get(port, f"127.0.0.1:{port}") == 200 and _get(port, "BOX.lan") == 200
        assert _get(port, "attacker.example") == 400 and _get(port, f"attacker.example:{port}") == 400
    finally:
        server.terminate()
        server.wait(10)
