"""Helpers for the authentication tests: keys, hand-made tokens, raw websocket handshakes, a TCP proxy."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.conftest import RunningServer

VIEWER = "query Viewer { viewer { userId } }"
VIEWER_AND_SESSIONS = "query Mine { viewer { userId } sessions(first: 10) { totalCount nodes { id name } } }"
TRANSPORT_WS = Subprotocol("graphql-transport-ws")
WS_TIMEOUT_SECONDS = 20


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def claims_for(user_id: str | None, **extra: Any) -> dict[str, Any]:
    """Ordinary claims: `sub` (unless None), issued now, valid for an hour; `extra` overrides."""
    now = int(time.time())
    claims: dict[str, Any] = {"iat": now, "exp": now + 3600}
    if user_id is not None:
        claims["sub"] = user_id
    claims.update(extra)
    return claims


def unsigned_token(claims: dict[str, Any]) -> str:
    """An `alg: none` token: header and claims, empty signature."""
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}."


def hs256_token_with_raw_key(claims: dict[str, Any], key: bytes, headers: dict[str, Any] | None = None) -> str:
    """An HS256 token signed with arbitrary bytes; PyJWT refuses public keys as HMAC secrets, an attacker does not."""
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', **(headers or {})})}.{_segment(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


@dataclass(frozen=True)
class KeyPair:
    private_key: Any
    public_pem: bytes


def rsa_key_pair() -> KeyPair:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(private_key, _public_pem(private_key))


def ec_key_pair() -> KeyPair:
    private_key = ec.generate_private_key(ec.SECP256R1())
    return KeyPair(private_key, _public_pem(private_key))


def _public_pem(private_key: Any) -> bytes:
    return bytes(
        private_key.public_key().public_bytes(
            encoding=serialization.Encoding.PEM, format=serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


async def viewer_request(server: RunningServer, headers: dict[str, str], document: str = VIEWER) -> httpx.Response:
    """A raw POST with exactly the given headers."""
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(server.http_url, json={"query": document}, headers=headers)


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors") or []]


@contextlib.asynccontextmanager
async def graphql_ws(server: RunningServer) -> AsyncIterator[ClientConnection]:
    """A raw graphql-transport-ws connection (no handshake sent yet)."""
    async with connect(server.ws_url, subprotocols=[TRANSPORT_WS], open_timeout=WS_TIMEOUT_SECONDS) as socket:
        yield socket


async def receive(socket: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WS_TIMEOUT_SECONDS):
        return dict(json.loads(await socket.recv()))


class TcpProxy:
    """Forwards a loopback port to another address, in its own thread; started and stopped on demand."""

    def __init__(self, listen_port: int, target_host: str, target_port: int) -> None:
        self.listen_port = listen_port
        self.target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=f"proxy-{listen_port}")
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.listen_port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        writers = [client_writer]
        self._writers.add(client_writer)
        try:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return
            writers.append(upstream_writer)
            self._writers.add(upstream_writer)
            await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))
        except asyncio.CancelledError:
            pass  # stop(): the connection is being torn down on purpose
        finally:
            self._tasks.discard(task)
            for writer in writers:
                self._writers.discard(writer)
                writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
