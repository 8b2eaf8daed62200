"""pysignalr (PyPI) over WebSockets with JSON and MessagePack, against /testhub.

pysignalr negotiates without `negotiateVersion`, so the server must answer version 0 and accept
`id=<connectionId>` (protocol doc §9, §10.1).
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit

import pytest
from pysignalr.client import SignalRClient
from pysignalr.messages import CompletionMessage
from pysignalr.protocol.json import JSONProtocol
from pysignalr.protocol.messagepack import MessagepackProtocol

from conftest import WAIT_S, http_get

PROTOCOLS = {"json": JSONProtocol, "messagepack": MessagepackProtocol}


@contextlib.asynccontextmanager
async def running_client(url: str, protocol: str, **kwargs):
    """A started SignalRClient; stopped (task cancelled, socket closed) on exit."""
    client = SignalRClient(url, protocol=PROTOCOLS[protocol](), retry_count=1, **kwargs)
    errors: list[CompletionMessage] = []

    async def on_error(message: CompletionMessage) -> None:
        errors.append(message)

    client.on_error(on_error)
    opened = asyncio.Event()

    async def on_open() -> None:
        opened.set()

    client.on_open(on_open)
    task = asyncio.create_task(client.run())
    waiter = asyncio.create_task(opened.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        if task in done:
            task.result()  # re-raise the negotiate / handshake failure
        task.cancel()
        raise AssertionError(f"pysignalr did not open a connection to {url} within {WAIT_S} s")
    try:
        yield client
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        ws = client._transport._ws
        if ws is not None:
            await ws.close()


async def invoke(client: SignalRClient, method: str, args: list) -> CompletionMessage:
    """Invokes `method` and returns its Completion (with `.result` or `.error`)."""
    loop = asyncio.get_running_loop()
    completion: asyncio.Future = loop.create_future()

    async def on_completion(message: CompletionMessage) -> None:
        if not completion.done():
            completion.set_result(message)

    await client.send(method, args, on_completion)
    return await asyncio.wait_for(completion, WAIT_S)


def connection_id_of(client: SignalRClient) -> str:
    """The `id` pysignalr put in its connect URL after negotiate (v0: the connection id)."""
    return parse_qs(urlsplit(client._transport._url).query)["id"][0]


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request) -> str:
    return request.param


def test_echo(server_url, protocol):
    async def scenario():
        async with running_client(f"{server_url}/testhub", protocol) as client:
            completion = await invoke(client, "Echo", ["héllo ☃ 你好"])
            assert completion.error is None
            assert completion.result == "héllo ☃ 你好"

    asyncio.run(scenario())


def test_negotiate_v0_connection_id_matches_server(server_url, protocol):
    async def scenario():
        async with running_client(f"{server_url}/testhub", protocol) as client:
            connection_id = connection_id_of(client)
            assert len(connection_id) == 22
            completion = await invoke(client, "GetCallerConnectionId", [])
            assert completion.result == connection_id

    asyncio.run(scenario())


def test_server_to_client_message(server_url, protocol):
    async def scenario():
        received: asyncio.Future = asyncio.get_running_loop().create_future()
        async with running_client(f"{server_url}/testhub", protocol) as client:
            async def on_message(args) -> None:
                if not received.done():
                    received.set_result(args)

            client.on("Message", on_message)
            completion = await invoke(client, "InvokeWithString", ["from python"])
            assert completion.error is None
            assert await asyncio.wait_for(received, WAIT_S) == ["from python"]

    asyncio.run(scenario())


def test_hub_error_text(server_url, protocol):
    async def scenario():
        async with running_client(f"{server_url}/testhub", protocol) as client:
            completion = await invoke(client, "ThrowException", ["An error occurred."])
            assert completion.error == ("An unexpected error occurred invoking 'ThrowException' on the server. "
                                        "InvalidOperationException: An error occurred.")
            # The connection keeps working after the error.
            assert (await invoke(client, "Echo", ["after"])).result == "after"

    asyncio.run(scenario())


def test_server_stream(server_url, protocol):
    async def scenario():
        items: list = []
        finished: asyncio.Future = asyncio.get_running_loop().create_future()
        async with running_client(f"{server_url}/testhub", protocol) as client:
            async def on_next(item) -> None:
                items.append(item)

            async def on_complete(message) -> None:
                if not finished.done():
                    finished.set_result(message)

            async def on_error(message) -> None:
                if not finished.done():
                    finished.set_exception(AssertionError(f"stream failed: {message.error}"))

            await client.stream("Stream", [], on_next, on_complete, on_error)
            await asyncio.wait_for(finished, WAIT_S)
            assert items == ["a", "b", "c"]

    asyncio.run(scenario())


def test_client_result(server_url, protocol):
    async def scenario():
        async with running_client(f"{server_url}/testhub", protocol) as client:
            async def on_result(args) -> int:
                return 10

            client.on("Result", on_result)
            status, body = await asyncio.to_thread(
                http_get, f"{server_url}/clientresult/{connection_id_of(client)}")
            assert (status, body) == (200, "10")

    asyncio.run(scenario())


def test_authorized_hub_with_bearer_token(server_url, protocol, jwt_token):
    async def scenario():
        # pysignalr calls access_token_factory only after negotiate, so the token goes in a header.
        async with running_client(f"{server_url}/authorizedhub", protocol,
                                  headers={"Authorization": f"Bearer {jwt_token}"}) as client:
            assert (await invoke(client, "Echo", ["secret"])).result == "secret"
            assert (await invoke(client, "GetUserNameIdentifier", [])).result == "testuser"

    asyncio.run(scenario())
