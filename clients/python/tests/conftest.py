"""Starts `signalr-testserver` once per test session and hands its base URL to the tests.

The binary comes from $SIGNALR_TESTSERVER, else <repo>/target/release/signalr-testserver. We wait
for its `Now listening on: http://127.0.0.1:PORT` line (with a deadline), never for a fixed time.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_BINARY = REPO_ROOT / "target" / "release" / "signalr-testserver"
LISTENING = re.compile(r"Now listening on:\s*(http://\S+)")
START_DEADLINE_S = 30
STOP_DEADLINE_S = 5

#: Bound for any single wait inside a test.
WAIT_S = 15


def _pump(stream, lines: queue.Queue, tail: list[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        tail.append(line)
        del tail[:-200]
        lines.put(line)
    lines.put(None)


@pytest.fixture(scope="session")
def server_url() -> str:
    binary = Path(os.environ.get("SIGNALR_TESTSERVER", DEFAULT_BINARY))
    if not binary.exists():
        pytest.fail(f"signalr-testserver binary not found at {binary}; build it with "
                    "`cargo build --release -p signalr-testserver` or set SIGNALR_TESTSERVER")
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    proc = subprocess.Popen([str(binary), "--urls", "http://127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    lines: queue.Queue = queue.Queue()
    tail: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, lines, tail), daemon=True).start()
    url = None
    try:
        while url is None:
            try:
                line = lines.get(timeout=START_DEADLINE_S)
            except queue.Empty:
                raise RuntimeError(f"no 'Now listening on:' within {START_DEADLINE_S} s") from None
            if line is None:
                raise RuntimeError(f"signalr-testserver exited early with {proc.wait()}")
            match = LISTENING.search(line)
            if match:
                url = match.group(1).rstrip("/")
    except RuntimeError as err:
        proc.kill()
        pytest.fail(f"{err}\n--- testserver output ---\n" + "\n".join(tail))
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def http_get(url: str) -> tuple[int, str]:
    """GET `url`; returns (status, body text)."""
    with urllib.request.urlopen(url, timeout=WAIT_S) as response:
        return response.status, response.read().decode("utf-8")


@pytest.fixture()
def jwt_token(server_url: str) -> str:
    status, token = http_get(f"{server_url}/generateJwtToken")
    assert status == 200
    return token
