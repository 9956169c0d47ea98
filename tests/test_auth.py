"""Who may ask: bearer tokens over HTTP and websockets, HS256 secrets, RS256/ES256 keys, aud/iss checks."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from websockets.exceptions import ConnectionClosed

from agno_graphql.auth import TokenVerifier
from agno_graphql.errors import Unauthenticated
from agno_graphql.settings import Settings
from tests.auth_support import (
    VIEWER,
    VIEWER_AND_SESSIONS,
    KeyPair,
    claims_for,
    ec_key_pair,
    error_codes,
    graphql_ws,
    hs256_token_with_raw_key,
    receive,
    rsa_key_pair,
    unsigned_token,
    viewer_request,
)
from tests.client import bearer, execute
from tests.conftest import TEST_SECRET, RunningServer, make_token, server_settings, start_server
from tests.matrix_support import acknowledged_ws, create_session, subscribe_run

AUDIENCE = "agno-graphql-tests"
ISSUER = "https://issuer.example.test/"
OTHER_SECRET = "not-the-suite-secret-but-as-long-as-it-0123"


def _tampered(user_id: str) -> str:
    """A real token of someone else with its claims swapped for `user_id`'s, signature kept."""
    header, _claims, signature = make_token("someone-else").split(".")
    claims = base64.urlsafe_b64encode(json.dumps(claims_for(user_id)).encode()).rstrip(b"=").decode()
    return f"{header}.{claims}.{signature}"


def _basic(user_id: str) -> str:
    return "Basic " + base64.b64encode(f"{user_id}:password".encode()).decode()


BAD_AUTHORIZATION: dict[str, Callable[[str], str | None]] = {
    "missing header": lambda user: None,
    "basic credentials": _basic,
    "bearer without token": lambda user: "Bearer",
    "token without bearer": lambda user: make_token(user),
    "bearer garbage": lambda user: "Bearer not-a-jwt",
    "expired": lambda user: f"Bearer {make_token(user, exp=int(time.time()) - 300)}",
    "not yet valid": lambda user: f"Bearer {make_token(user, nbf=int(time.time()) + 600)}",
    "wrong secret": lambda user: f"Bearer {make_token(user, secret=OTHER_SECRET)}",
    "tampered claims": lambda user: f"Bearer {_tampered(user)}",
    "alg none": lambda user: f"Bearer {unsigned_token(claims_for(user))}",
    "no sub": lambda user: f"Bearer {jwt.encode(claims_for(None), TEST_SECRET, algorithm='HS256')}",
    "empty sub": lambda user: f"Bearer {make_token(user, sub='')}",
    "sub not a string": lambda user: f"Bearer {make_token(user, sub=12345)}",
}


def _headers(authorization: str | None) -> dict[str, str]:
    return {} if authorization is None else {"Authorization": authorization}


async def _ask(server: RunningServer, token: str) -> dict[str, Any]:
    """The raw response to the viewer query with a bearer token."""
    return dict((await viewer_request(server, bearer(token))).json())


def _assert_refused(body: dict[str, Any], *hidden: str) -> None:
    """No data, only UNAUTHENTICATED errors, and none of `hidden` anywhere in the response."""
    assert body.get("data") is None
    assert body["errors"], body
    assert set(error_codes(body)) == {"UNAUTHENTICATED"}, body
    shown = json.dumps(body)
    for value in hidden:
        assert value not in shown


# --- HTTP, HS256 with the suite's shared secret ---


async def test_valid_token_identifies_the_viewer(server: RunningServer, user_id: str) -> None:
    result = await execute(server, make_token(user_id), VIEWER)
    assert result == {"viewer": {"userId": user_id}}


async def test_token_from_any_jwt_library_works_like_the_cli_one(server: RunningServer, user_id: str) -> None:
    token = jwt.encode({"sub": user_id}, TEST_SECRET, algorithm="HS256")
    result = await execute(server, token, VIEWER)
    assert result == {"viewer": {"userId": user_id}}


async def test_token_expired_within_leeway_is_accepted(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id, exp=int(time.time()) - 5)
    result = await execute(server, token, VIEWER)
    assert result == {"viewer": {"userId": user_id}}


@pytest.mark.parametrize("case", list(BAD_AUTHORIZATION))
async def test_bad_authorization_is_refused_without_data(server: RunningServer, user_id: str, case: str) -> None:
    session_id = (await create_session(server, make_token(user_id)))["id"]

    response = await viewer_request(server, _headers(BAD_AUTHORIZATION[case](user_id)), VIEWER_AND_SESSIONS)

    _assert_refused(response.json(), session_id)


# --- HTTP, audience and issuer ---


@pytest.fixture(scope="module")
def audience_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    settings = server_settings(
        new_database_url("aud"), tmp_path_factory.mktemp("aud"), jwt_audience=AUDIENCE, jwt_issuer=ISSUER
    )
    running = start_server(settings)
    yield running
    running.stop()


AUDIENCE_ACCEPTED: dict[str, dict[str, Any]] = {
    "right aud and iss": {"aud": AUDIENCE, "iss": ISSUER},
    "aud list containing ours": {"aud": ["other-api", AUDIENCE], "iss": ISSUER},
}
AUDIENCE_REFUSED: dict[str, dict[str, Any]] = {
    "wrong aud": {"aud": "other-api", "iss": ISSUER},
    "missing aud": {"iss": ISSUER},
    "wrong iss": {"aud": AUDIENCE, "iss": "https://elsewhere.example.test/"},
    "missing iss": {"aud": AUDIENCE},
}


@pytest.mark.parametrize("case", list(AUDIENCE_ACCEPTED))
async def test_configured_audience_and_issuer_accept_matching_token(
    audience_server: RunningServer, user_id: str, case: str
) -> None:
    token = make_token(user_id, **AUDIENCE_ACCEPTED[case])
    result = await execute(audience_server, token, VIEWER)
    assert result == {"viewer": {"userId": user_id}}


@pytest.mark.parametrize("case", list(AUDIENCE_REFUSED))
async def test_configured_audience_and_issuer_refuse_other_token(
    audience_server: RunningServer, user_id: str, case: str
) -> None:
    claims = claims_for(user_id, **AUDIENCE_REFUSED[case])
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    _assert_refused(await _ask(audience_server, token), user_id)


# --- HTTP, public keys: RS256 from a PEM file, ES256 from a JWKS file ---


@dataclass(frozen=True)
class KeyServer:
    running: RunningServer
    keys: dict[str, KeyPair]
    key_file: Path


@pytest.fixture(scope="module")
def pem_server(new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyServer]:
    keys = {"rsa": rsa_key_pair()}
    folder = tmp_path_factory.mktemp("pem")
    key_file = folder / "public.pem"
    key_file.write_bytes(keys["rsa"].public_pem)
    running = start_server(server_settings(new_database_url("pem"), folder, jwt_public_key_file=str(key_file)))
    yield KeyServer(running, keys, key_file)
    running.stop()


@pytest.fixture(scope="module")
def jwks_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeyServer]:
    keys = {"ec-1": ec_key_pair(), "rsa-1": rsa_key_pair()}
    ec_jwk = ECAlgorithm.to_jwk(keys["ec-1"].private_key.public_key(), as_dict=True)
    rsa_jwk = RSAAlgorithm.to_jwk(keys["rsa-1"].private_key.public_key(), as_dict=True)
    document = {
        "keys": [
            {**ec_jwk, "kid": "ec-1", "alg": "ES256", "use": "sig"},
            {**rsa_jwk, "kid": "rsa-1", "alg": "RS256", "use": "sig"},
        ]
    }
    folder = tmp_path_factory.mktemp("jwks")
    key_file = folder / "jwks.json"
    key_file.write_text(json.dumps(document))
    running = start_server(server_settings(new_database_url("jwks"), folder, jwt_public_key_file=str(key_file)))
    yield KeyServer(running, keys, key_file)
    running.stop()


async def test_rs256_token_verified_with_pem_public_key(pem_server: KeyServer, user_id: str) -> None:
    token = jwt.encode(claims_for(user_id), pem_server.keys["rsa"].private_key, algorithm="RS256")
    result = await execute(pem_server.running, token, VIEWER)
    assert result == {"viewer": {"userId": user_id}}


async def test_rs256_token_of_another_key_refused_by_pem_server(pem_server: KeyServer, user_id: str) -> None:
    token = jwt.encode(claims_for(user_id), rsa_key_pair().private_key, algorithm="RS256")
    _assert_refused(await _ask(pem_server.running, token), user_id)


async def test_hs256_token_signed_with_pem_public_key_refused(pem_server: KeyServer, user_id: str) -> None:
    token = hs256_token_with_raw_key(claims_for(user_id), pem_server.keys["rsa"].public_pem)
    _assert_refused(await _ask(pem_server.running, token), user_id)


async def test_hs256_token_signed_with_public_key_refused_even_when_hs256_is_allowed(
    new_database_url: Callable[[str], str], tmp_path: Path, user_id: str
) -> None:
    keys = rsa_key_pair()
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(keys.public_pem)
    settings = server_settings(
        new_database_url("hs"), tmp_path, jwt_public_key_file=str(key_file), jwt_algorithms=("RS256", "HS256")
    )
    running = start_server(settings)
    try:
        token = hs256_token_with_raw_key(claims_for(user_id), keys.public_pem)
        _assert_refused(await _ask(running, token), user_id)
    finally:
        running.stop()


@pytest.mark.parametrize(("kid", "algorithm"), [("ec-1", "ES256"), ("rsa-1", "RS256"), (None, "ES256")])
async def test_token_verified_with_jwks_key(
    jwks_server: KeyServer, user_id: str, kid: str | None, algorithm: str
) -> None:
    private_key = jwks_server.keys[kid or "ec-1"].private_key
    headers = {"kid": kid} if kid else None
    token = jwt.encode(claims_for(user_id), private_key, algorithm=algorithm, headers=headers)
    result = await execute(jwks_server.running, token, VIEWER)
    assert result == {"viewer": {"userId": user_id}}


async def test_es256_token_of_unknown_key_refused_by_jwks_server(jwks_server: KeyServer, user_id: str) -> None:
    token = jwt.encode(claims_for(user_id), ec_key_pair().private_key, algorithm="ES256", headers={"kid": "ec-1"})
    _assert_refused(await _ask(jwks_server.running, token), user_id)


@pytest.mark.parametrize("signing_key", ["public pem", "jwks file"])
async def test_hs256_token_signed_with_jwks_public_key_refused(
    jwks_server: KeyServer, user_id: str, signing_key: str
) -> None:
    key = jwks_server.keys["ec-1"].public_pem if signing_key == "public pem" else jwks_server.key_file.read_bytes()
    token = hs256_token_with_raw_key(claims_for(user_id), key, headers={"kid": "ec-1"})
    _assert_refused(await _ask(jwks_server.running, token), user_id)


# --- websockets (graphql-transport-ws): the token travels in connection_init ---


@pytest.mark.parametrize("key", ["Authorization", "authorization"])
async def test_websocket_run_with_token_in_init_payload(server: RunningServer, user_id: str, key: str) -> None:
    message = f"hello over {key}"
    async with acknowledged_ws(server, make_token(user_id), auth_key=key) as socket:
        await subscribe_run(socket, "1", {"input": {"agentId": "assistant", "message": message}})
        events: list[dict[str, Any]] = []
        while (frame := await receive(socket))["type"] == "next":
            assert "errors" not in frame["payload"], frame
            events.append(frame["payload"]["data"]["runAgent"])
    assert frame == {"id": "1", "type": "complete"}
    assert events[0]["__typename"] == "RunStarted"
    assert events[-1]["__typename"] == "RunCompleted"
    assert events[-1]["content"] == f"You said: {message}"


BAD_INIT_PAYLOADS: dict[str, Callable[[str], dict[str, Any] | None]] = {
    "no payload": lambda user: None,
    "empty payload": lambda user: {},
    "token without bearer": lambda user: {"Authorization": make_token(user)},
    "wrong secret": lambda user: {"Authorization": f"Bearer {make_token(user, secret=OTHER_SECRET)}"},
    "expired": lambda user: {"authorization": f"Bearer {make_token(user, exp=int(time.time()) - 300)}"},
    "alg none": lambda user: {"Authorization": f"Bearer {unsigned_token(claims_for(user))}"},
}


@pytest.mark.parametrize("case", list(BAD_INIT_PAYLOADS))
async def test_websocket_without_valid_token_closed_with_4403(server: RunningServer, user_id: str, case: str) -> None:
    payload = BAD_INIT_PAYLOADS[case](user_id)
    init: dict[str, Any] = {"type": "connection_init"}
    if payload is not None:
        init["payload"] = payload
    async with graphql_ws(server) as socket:
        await socket.send(json.dumps(init))
        with pytest.raises(ConnectionClosed) as closed:
            await receive(socket)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


def test_a_remembered_token_is_still_refused_once_it_expires(tmp_path: Path) -> None:
    """Verified tokens are remembered (no signature check per request), but never past their `exp`."""
    verifier = TokenVerifier(Settings(state_dir=str(tmp_path), jwt_leeway_seconds=0), TEST_SECRET)
    token = make_token("soon-gone", exp=int(time.time()) + 1)
    assert verifier.verify(token).user_id == "soon-gone"
    assert verifier.verify(token).user_id == "soon-gone"
    time.sleep(max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()) + 0.05)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(token)


def test_a_remembered_token_is_refused_with_another_signature(tmp_path: Path) -> None:
    verifier = TokenVerifier(Settings(state_dir=str(tmp_path)), TEST_SECRET)
    good = make_token("someone")
    assert verifier.verify(good).user_id == "someone"
    header, payload, signature = good.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(Unauthenticated):
        verifier.verify(forged)
