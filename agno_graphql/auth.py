"""Bearer tokens: verifying JWTs (HS256 secret, or RS256/ES256 keys from PEM/JWKS) and minting dev tokens."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKSet

from agno_graphql.errors import Unauthenticated
from agno_graphql.settings import Settings, SettingsError
from agno_graphql.state_files import kept_secret

log = logging.getLogger(__name__)

SECRET_FILE = "jwt-secret"
MAX_TOKEN_CHARS = 8192
EXPIRED = "Token expired."
MAX_RECHECK_SECONDS = 3600.0
DENIED = "This user is denied access."
_ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}
_SYMMETRIC = {"HS256", "HS384", "HS512"}
# Verified tokens remembered by their digest, so a client's every request does not verify the signature again.
VERIFIED_CACHE_SIZE = 4096
VERIFIED_CACHE_SECONDS = 300.0


class KeyFileError(SettingsError):
    """The public key file is missing, unreadable or not a key; the message says which."""


class DeniedUsersFileError(SettingsError):
    """The denied users file is missing or unreadable at startup."""


@dataclass(frozen=True)
class Viewer:
    user_id: str
    # Epoch seconds from which the token is refused (its `exp` plus the leeway); None when it has no `exp`.
    refused_from: float | None = None


class DeniedUsers:
    """User ids refused whatever their token says, from a text file (one id a line, `#` comments).

    The file is read again when it changes, looked at no more than once a second, so that an operator can
    lock a user out without restarting. A file that vanishes or cannot be read later keeps the last list.
    """

    CHECK_INTERVAL_SECONDS = 1.0

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._checked_at = 0.0
        self._signature: tuple[int, int, int] | None = None
        self._users: frozenset[str] = frozenset()
        try:
            self._reload()
        except OSError as exc:
            raise DeniedUsersFileError(f"AGNO_GRAPHQL_DENIED_USERS_FILE={path!r}: {exc.strerror or exc}") from None

    def _reload(self) -> None:
        stat = self.path.stat()
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        self._checked_at = time.monotonic()
        if signature == self._signature:
            return
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        self._users = frozenset(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))
        self._signature = signature

    def __contains__(self, user_id: str) -> bool:
        if time.monotonic() - self._checked_at >= self.CHECK_INTERVAL_SECONDS:
            try:
                self._reload()
            except OSError as exc:
                log.warning("cannot read the denied users file %s (%s); keeping the last list", self.path, exc)
        return user_id in self._users


def _load_public_keys(path: str) -> tuple[list[Any], dict[str, Any]]:
    """Keys from a PEM file or a JWKS document: (keys without kid, keys by kid)."""
    try:
        raw = Path(path).read_text()
    except OSError as exc:
        raise KeyFileError(f"AGNO_GRAPHQL_JWT_PUBLIC_KEY_FILE={path!r}: {exc.strerror or exc}") from None
    stripped = raw.strip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
            jwks = PyJWKSet.from_dict(document) if "keys" in document else None
            single = PyJWK.from_dict(document) if jwks is None else None
        except (ValueError, jwt.PyJWTError) as exc:
            raise KeyFileError(f"AGNO_GRAPHQL_JWT_PUBLIC_KEY_FILE={path!r}: not a valid JWKS: {exc}") from None
        keys = jwks.keys if jwks is not None else [single]
        by_kid = {k.key_id: k.key for k in keys if k is not None and k.key_id}
        return [k.key for k in keys if k is not None and not k.key_id], by_kid
    if "-----BEGIN" not in stripped:
        raise KeyFileError(f"AGNO_GRAPHQL_JWT_PUBLIC_KEY_FILE={path!r}: neither a PEM key nor a JWKS document")
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        return [load_pem_public_key(stripped.encode())], {}
    except ValueError as exc:
        raise KeyFileError(f"AGNO_GRAPHQL_JWT_PUBLIC_KEY_FILE={path!r}: not a public key: {exc}") from None


def ensure_secret(settings: Settings) -> tuple[str, bool]:
    """The HS256 secret: configured, or kept in the state folder (created 0600 on first start)."""
    if settings.jwt_secret:
        return settings.jwt_secret, False
    return kept_secret(settings.state_path / SECRET_FILE)


class TokenVerifier:
    def __init__(self, settings: Settings, secret: str | None) -> None:
        self.algorithms = list(settings.effective_jwt_algorithms)
        self.audience = settings.jwt_audience or None
        self.issuer = settings.jwt_issuer or None
        self.leeway = settings.jwt_leeway_seconds
        self.denied = DeniedUsers(settings.denied_users_file) if settings.denied_users_file else None
        self._secret = secret
        # digest of the token -> (its viewer, monotonic time until which the entry may be used)
        self._verified: dict[bytes, tuple[Viewer, float]] = {}
        self._keys: list[Any] = []
        self._keys_by_kid: dict[str, Any] = {}
        if settings.jwt_public_key_file:
            self._keys, self._keys_by_kid = _load_public_keys(settings.jwt_public_key_file)
            if not self._keys and not self._keys_by_kid:
                raise KeyFileError(f"AGNO_GRAPHQL_JWT_PUBLIC_KEY_FILE={settings.jwt_public_key_file!r}: no keys")

    def _candidate_keys(self, token: str) -> list[Any]:
        header = jwt.get_unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise Unauthenticated("Token algorithm not allowed.")
        if algorithm in _SYMMETRIC:
            return [self._secret] if self._secret else []
        if algorithm in _ASYMMETRIC:
            kid = header.get("kid")
            if kid and kid in self._keys_by_kid:
                return [self._keys_by_kid[kid]]
            return self._keys + ([] if kid else list(self._keys_by_kid.values()))
        return []

    def verify(self, token: str) -> Viewer:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("Invalid token.")
        digest = hashlib.sha256(token.encode()).digest()
        remembered = self._verified.get(digest)
        if remembered is not None and time.monotonic() < remembered[1]:
            viewer = remembered[0]
            reason = self.refusal(viewer)
            if reason is not None:
                raise Unauthenticated(reason)
            return viewer
        viewer = self._verify_signed(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # the oldest entry
        self._verified[digest] = (viewer, time.monotonic() + VERIFIED_CACHE_SECONDS)
        return viewer

    def _verify_signed(self, token: str) -> Viewer:
        try:
            keys = self._candidate_keys(token)
        except jwt.PyJWTError:
            raise Unauthenticated("Invalid token.") from None
        if not keys:
            raise Unauthenticated("Invalid token.")
        last_error: Exception | None = None
        for key in keys:
            try:
                claims = jwt.decode(
                    token,
                    key=key,
                    algorithms=self.algorithms,
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway,
                    options={"require": ["sub"], "verify_aud": self.audience is not None},
                )
            except jwt.ExpiredSignatureError:
                raise Unauthenticated(EXPIRED) from None
            except jwt.PyJWTError as exc:
                last_error = exc
                continue
            subject = claims.get("sub")
            if not isinstance(subject, str) or not subject.strip() or len(subject) > 128 or not subject.isprintable():
                raise Unauthenticated("Token has no valid subject.")
            if self.denied is not None and subject in self.denied:
                raise Unauthenticated(DENIED)
            return Viewer(user_id=subject, refused_from=self._refused_from(claims.get("exp")))
        raise Unauthenticated("Invalid token.") from last_error

    def _refused_from(self, expiry: Any) -> float | None:
        """When a verified token's `exp` (plus the leeway) passes; None without one, or past any clock."""
        if not isinstance(expiry, int | float) or isinstance(expiry, bool):
            return None
        try:
            return float(expiry) + self.leeway
        except OverflowError:  # an integer of hundreds of digits: PyJWT compares it exactly, a float cannot hold it
            return None

    def refusal(self, viewer: Viewer) -> str | None:
        """Why a viewer verified earlier is refused now (its token expired, its user was denied), or None."""
        if viewer.refused_from is not None and time.time() >= viewer.refused_from:
            return EXPIRED
        if self.denied is not None and viewer.user_id in self.denied:
            return DENIED
        return None

    def seconds_to_recheck(self, viewer: Viewer) -> float | None:
        """How long a viewer stays valid for sure: until its token expires, or the next look at the denied users."""
        delays = [] if viewer.refused_from is None else [min(MAX_RECHECK_SECONDS, viewer.refused_from - time.time())]
        if self.denied is not None:
            delays.append(DeniedUsers.CHECK_INTERVAL_SECONDS)
        return max(0.0, min(delays)) if delays else None

    def verify_header(self, value: str | None) -> Viewer:
        """`Bearer <token>` from an Authorization header or init payload."""
        if not value:
            raise Unauthenticated("Authentication required: send Authorization: Bearer <token>.")
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be 'Bearer <token>'.")
        return self.verify(token.strip())


def mint_token(secret: str, user_id: str, ttl_seconds: int, settings: Settings) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, secret, algorithm="HS256")
