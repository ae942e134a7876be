"""The server's limits as a client meets them: ``outcomes serve`` in a real process on a free
loopback port, driven with raw sockets (OWASP API4 2023, unrestricted resource consumption).

One server for the module, with 1 s header and body timeouts so that a stall is cut quickly;
every answer is problem+json and closes the connection."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
TIMEOUT = 1.0  # OUTCOMES_HEADER_TIMEOUT and OUTCOMES_BODY_TIMEOUT of the server under test
MARGIN = 1.5  # seconds a cut may come after its timeout on a loaded 2-core machine
MIB = 1024 * 1024

pytestmark = pytest.mark.server_process


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return sock

    def memory_kib(self) -> dict[str, int]:
        """VmRSS (resident now) and VmHWM (resident peak) of the server, KiB."""
        lines = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines)
                if k in ("VmRSS", "VmHWM")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve-limits")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OUTCOMES_SQLITE_PATH": str(folder / "outcomes.sqlite"),
           "OUTCOMES_PORT": str(port), "OUTCOMES_LOG_FORMAT": "json",
           "OUTCOMES_CATCH_UP_INTERVAL": "0", "OUTCOMES_HEADER_TIMEOUT": str(TIMEOUT),
           "OUTCOMES_BODY_TIMEOUT": str(TIMEOUT), "OUTCOMES_RATE_LIMIT": "off"}
    log = folder / "stderr.log"
    with log.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "cli", "serve"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while '"listening"' not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve did not start listening"
            time.sleep(0.05)
        yield Server(process, port)
    finally:
        process.terminate()
        process.wait(timeout=30)


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one answer; the server closes after it."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return parse_answer(data)


def parse_answer(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {n.lower(): v.strip() for n, v in (h.split(":", 1) for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def exchange(server: Server, pieces: Iterable[bytes]) -> bytes:
    """Send ``pieces`` while a second thread reads the answer, and stop sending once the server
    closes: the answer is read as it arrives, before the reset that closing a socket with unread
    bytes sends (RFC 9112 §9.6)."""
    sock = server.connect()
    received: list[bytes] = []

    def reader() -> None:
        try:
            while chunk := sock.recv(65536):
                received.append(chunk)
        except OSError:
            pass

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for piece in pieces:
            sock.sendall(piece)
    except OSError:
        pass
    thread.join(timeout=9)
    sock.close()
    return b"".join(received)


def assert_problem(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> None:
    got, headers, body = answer
    assert (got, headers["content-type"]) == (status, "application/problem+json")
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (status, code)


def test_a_stalled_request_head_is_cut_after_the_header_timeout(server: Server) -> None:
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never the blank line
        answer = read_answer(sock)
        elapsed = time.monotonic() - started
    assert_problem(answer, 408, "request-timeout")
    assert TIMEOUT - 0.1 <= elapsed <= TIMEOUT + MARGIN


def test_a_head_sent_byte_by_byte_is_cut_after_the_header_timeout(server: Server) -> None:
    with server.connect() as sock:
        sock.settimeout(0.2)
        started = time.monotonic()
        answer = b""
        for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000:
            try:
                sock.sendall(bytes([byte]))
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert elapsed <= TIMEOUT + MARGIN


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(server: Server) -> None:
    with server.connect() as sock:
        started = time.monotonic()
        answer = read_answer(sock)
        elapsed = time.monotonic() - started
    assert_problem(answer, 408, "request-timeout")
    assert elapsed <= TIMEOUT + MARGIN


def test_a_stalled_body_answers_408(server: Server) -> None:
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"POST /episodes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"patient")
        answer = read_answer(sock)
        elapsed = time.monotonic() - started
    assert_problem(answer, 408, "request-timeout")
    assert answer[1]["connection"] == "close"
    assert TIMEOUT - 0.1 <= elapsed <= TIMEOUT + MARGIN


@pytest.mark.parametrize("pieces", [1, 64], ids=["one-write", "64-writes"])
def test_a_64_kib_header_answers_431(server: Server, pieces: int) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n"
    size = -(-len(request) // pieces)
    answer = exchange(server, [request[start:start + size] for start in range(0, len(request), size)])
    assert_problem(parse_answer(answer), 431, "header-too-large")


def test_a_header_under_the_limit_is_served(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     b"X-Big: " + b"a" * 8000 + b"\r\n\r\n")
        status, _, _ = read_answer(sock)
    assert status == 200


def test_a_foreign_host_answers_400_problem(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: rebound.example:8000\r\nConnection: close\r\n\r\n")
        answer = read_answer(sock)
    assert_problem(answer, 400, "host-not-allowed")


def _upload(server: Server, chunked: bool, total: int, answers: list[bytes],
            sent: list[int]) -> None:
    """POST ``total`` bytes of filler (chunked, or with its Content-Length) in 64 KiB writes;
    the answer goes to ``answers``, the bytes the client could write to ``sent``."""
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % total
    block = b"a" * 65536

    def pieces() -> Iterator[bytes]:
        yield (b"POST /episodes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/json\r\n" + framing + b"\r\n\r\n")
        for _ in range(total // len(block)):
            written.append(len(block))
            yield b"10000\r\n" + block + b"\r\n" if chunked else block
        if chunked:
            yield b"0\r\n\r\n"

    written: list[int] = []
    answers.append(exchange(server, pieces()))
    sent.append(sum(written))


def test_four_concurrent_100_mb_uploads_answer_413_in_bounded_memory(server: Server) -> None:
    before = server.memory_kib()
    answers: list[bytes] = []
    sent: list[int] = []
    threads = [threading.Thread(target=_upload, args=(server, chunked, 100_000_000, answers, sent))
               for chunked in (True, False, True, False)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=9)
    elapsed = time.monotonic() - started
    after = server.memory_kib()
    growth_mib = (after["VmHWM"] - before["VmRSS"]) / 1024
    print(f"\nRSS before {before['VmRSS'] / 1024:.1f} MiB, peak after {after['VmHWM'] / 1024:.1f}"
          f" MiB: growth {growth_mib:.1f} MiB for 4 x 100 MB in {elapsed:.2f} s; the clients"
          f" could write {max(sent) / MIB:.1f} MiB at most before the server closed")
    assert [answer.split(b"\r\n", 1)[0] for answer in answers] == \
        [b"HTTP/1.1 413 Request Entity Too Large"] * 4
    assert [json.loads(parse_answer(answer)[2])["code"] for answer in answers] == ["body-too-large"] * 4
    assert growth_mib <= 50
    assert max(sent) < 20 * MIB  # the server stopped reading (socket buffers hold the rest)
    assert elapsed < 9
