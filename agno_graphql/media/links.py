"""Signed download links: bound to one attachment and its owner, valid for a while, usable with no header (an
`<img>` tag shows one)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path
from urllib.parse import quote

from agno_graphql.state_files import kept_secret

ATTACHMENTS_PATH = "/attachments"
SECRET_FILE = "attachment-url.secret"


def ensure_link_secret(configured: str, state_path: Path) -> tuple[str, bool]:
    """The signing secret: configured, or kept in the state folder (created 0600 on first start, like the JWT
    secret); True when it was made now."""
    if configured:
        return configured, False
    return kept_secret(state_path / SECRET_FILE)


class LinkSigner:
    def __init__(self, secret: str, valid_seconds: int, public_base_url: str = "") -> None:
        self._key = secret.encode()
        self.valid_seconds = valid_seconds
        self._base = public_base_url.rstrip("/")

    def _signature(self, attachment_id: str, user_id: str, expires: int) -> str:
        message = f"{attachment_id}\n{user_id}\n{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def url(self, attachment_id: str, user_id: str, name: str, now: float | None = None) -> str:
        """A fresh link; absolute when a public base URL is configured, otherwise a path from the server's root."""
        expires = int((time.time() if now is None else now) + self.valid_seconds)
        signature = self._signature(attachment_id, user_id, expires)
        path = f"{ATTACHMENTS_PATH}/{quote(attachment_id, safe='')}/{quote(name, safe='')}"
        return f"{self._base}{path}?expires={expires}&signature={signature}"

    def valid(self, attachment_id: str, user_id: str, expires: str, signature: str) -> bool:
        if not expires.isdigit() or int(expires) < time.time():
            return False
        expected = self._signature(attachment_id, user_id, int(expires))
        return hmac.compare_digest(expected, signature)
