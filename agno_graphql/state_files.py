"""Secrets the server makes for itself and keeps in the state folder when none is configured."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def kept_secret(path: Path) -> tuple[str, bool]:
    """The secret in `path`, made (0600) on first use; True when it was made now. Processes that share the folder
    and start together agree on one: only the first creates the file."""
    if path.is_file():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip(), False
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret, True
