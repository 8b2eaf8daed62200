"""signalrcore (PyPI) over Server-Sent Events and long polling, JSON, against /testhub.

signalrcore negotiates version 0, speaks SSE through its own raw-socket HTTP client (Host header
without the port) and long polling with `.json()` on POST answers (protocol doc §9). Its long-polling
client posts the handshake before its first poll, so the server must accept sends on a negotiated
connection before the first poll. It also takes only the first message out of each poll answer (the
rest waits for the next answer), so each scenario here makes the server's next answer start with
the message the test waits for.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import pytest
from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.messages.close_message import CloseMessage
from signalrcore.types import HttpTransportType, HubProtocolEncoding

from conftest import WAIT_S

TRANSPORTS = {
    "ServerSentEvents": (HttpTransportType.server_sent_events, "SSETransport"),
    "LongPolling": (HttpTransportType.long_polling, "LongPollingTransport"),
}


class Outcome:
    """A value delivered from a signalrcore callback thread, awaited with a deadline."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.value = None

    def set(self, value) -> None:
        if not self._event.is_set():
            self.value = value
            self._event.set()

    def wait(self, what: str):
        assert self._event.wait(WAIT_S), f"timed out after {WAIT_S} s waiting for {what}"
        return self.value


@contextlib.contextmanager
def started_connection(url: str, transport_name: str):
    transport, class_name = TRANSPORTS[transport_name]
    connection = (HubConnectionBuilder()
                  .with_url(url, options={"transport": transport})
                  .with_hub_protocol(HubProtocolEncoding.text)
                  .configure_logging(logging.WARNING)
                  .build())
    opened, closed, errors = Outcome(), Outcome(), []
    connection.on_open(lambda: opened.set(True))
    connection.on_close(lambda: closed.set(True))
    connection.on_error(lambda message: errors.append(message))
    assert connection.start() is True
    try:
        opened.wait("on_open (negotiate + handshake)")
        assert type(connection.transport).__name__ == class_name, \
            f"signalrcore fell back to {type(connection.transport).__name__}; negotiate must list {transport_name}"
        connection.errors = errors
        yield connection
    finally:
        if transport is HttpTransportType.server_sent_events and connection.transport.is_connected():
            # signalrcore's SSE stop() closes its socket from another thread while its reader
            # blocks in recv(), so it only returns once the server sends something. A Close
            # message is the protocol's own way out: the server answers Close and ends the stream.
            connection.transport.send(CloseMessage(None, False))
        else:
            connection.stop()
    closed.wait("on_close after the close")


def invoke(connection, method: str, args: list):
    """Invokes `method`; returns the Completion message (its `.result`) or fails on an error."""
    outcome = Outcome()
    connection.send(method, args, lambda message: outcome.set(message))
    message = outcome.wait(f"the completion of {method}")
    return message.result


@pytest.fixture(params=sorted(TRANSPORTS))
def transport_name(request) -> str:
    return request.param


def test_echo_and_transport_name(server_url, transport_name):
    with started_connection(f"{server_url}/testhub", transport_name) as connection:
        assert invoke(connection, "Echo", ["héllo ☃ 你好"]) == "héllo ☃ 你好"
        assert invoke(connection, "GetActiveTransportName", []) == transport_name
        assert connection.errors == []


def test_server_message(server_url, transport_name):
    with started_connection(f"{server_url}/testhub", transport_name) as connection:
        received = Outcome()
        connection.on("Message", lambda args: received.set(args))
        # Not waiting for the completion: over long polling it may share a poll answer with the
        # Message, and signalrcore keeps everything after the first message for a later poll.
        connection.send("InvokeWithString", ["from signalrcore"])
        assert received.wait("Message") == ["from signalrcore"]


def test_hub_error_reaches_on_error(server_url, transport_name):
    with started_connection(f"{server_url}/testhub", transport_name) as connection:
        failed = Outcome()
        connection.on_error(lambda message: failed.set(message))
        connection.send("ThrowException", ["An error occurred."])
        message = failed.wait("the error completion")
        assert message.error == ("An unexpected error occurred invoking 'ThrowException' on the server. "
                                 "InvalidOperationException: An error occurred.")
        assert invoke(connection, "Echo", ["after"]) == "after"
