"""The header limit of the real server: ``gridmap serve`` in a subprocess.

TestClient bypasses the HTTP parser, so this drives the command an operator runs
(``gridmap serve``, two worker processes, httptools) over raw sockets: a huge
header, and one that never ends, are cut off at the limit with a 431 problem;
normal requests go on being answered.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import api_support as support
import pytest

from api.limits import MAX_HEADER_BYTES

api_data = support.api_data
GRIDMAP = Path(sys.executable).with_name("gridmap")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(port: int, head: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head)
        return _read_response(s)


def _read_response(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.partition(":") for line in lines[1:])
    }
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


@pytest.fixture(scope="module")
def served(api_data: support.ApiData) -> Iterator[int]:
    port = _free_port()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": api_data.url}
    proc = subprocess.Popen(
        [str(GRIDMAP), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "gridmap serve did not start"
            try:
                status, _, _ = _request(
                    port, b"GET /collections HTTP/1.1\r\nHost: t\r\n\r\n"
                )
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


def _head(filler: int) -> bytes:
    return (
        b"GET /collections HTTP/1.1\r\nHost: t\r\nX-Filler: "
        + b"a" * filler
        + b"\r\nConnection: close\r\n\r\n"
    )


def test_normal_and_large_but_allowed_headers(served: int) -> None:
    status, _, body = _request(served, _head(MAX_HEADER_BYTES // 2))
    assert status == 200, body[:300]


def test_header_over_the_limit_is_431_problem(served: int) -> None:
    status, headers, body = _request(served, _head(MAX_HEADER_BYTES + 100))
    assert status == 431, body[:300]
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 431 and str(MAX_HEADER_BYTES) in problem["detail"]


@pytest.mark.parametrize("finish", [True, False], ids=["50MB", "endless"])
def test_huge_header_is_cut_off_early(served: int, finish: bool) -> None:
    """50 MB of header (or a header that never ends): the server answers 431 and
    closes long before the client is done; it keeps serving others."""
    sent = 0
    total = 50 * 1024 * 1024
    s = socket.create_connection(("127.0.0.1", served), timeout=30)
    stop = threading.Event()

    def flood() -> None:
        nonlocal sent
        chunk = b"a" * 65536
        try:
            s.sendall(b"GET /collections HTTP/1.1\r\nHost: t\r\nX-Filler: ")
            while sent < total and not stop.is_set():
                s.sendall(chunk)
                sent += len(chunk)
            if finish and not stop.is_set():
                s.sendall(b"\r\n\r\n")
        except OSError:
            pass  # the server closed the connection: what we want

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        status, headers, body = _read_response(s)
    finally:
        stop.set()
        t.join(timeout=30)
        s.close()
    assert status == 431, body[:300]
    assert headers.get("connection") == "close"
    print(f"sent before cut-off: {sent} bytes")
    assert sent < total  # cut off before the 50 MB were read
    status, _, _ = _request(served, _head(100))
    assert status == 200


def test_a_large_body_is_not_taken_for_a_large_head(
    served: int, api_data: support.ApiData
) -> None:
    """The bytes of a request's body, read together with its end, are not
    counted as the next request's head (a 300 kB batch came back 431)."""
    items = [{"lon": 118.8 + i * 1e-5, "lat": 29.0 + i * 1e-5} for i in range(8000)]
    body = json.dumps({"items": items}).encode()
    assert len(body) > 8 * MAX_HEADER_BYTES
    head = (
        b"POST /lookup/batch HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {api_data.viewer}\r\n".encode()
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    )
    for _ in range(3):
        status, _, answer = _request(served, head + body)
        assert status == 200, answer[:300]
