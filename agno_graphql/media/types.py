"""The attachment types this server knows, each with its kind, and the other names they go by."""

from __future__ import annotations

IMAGE = "IMAGE"
AUDIO = "AUDIO"
VIDEO = "VIDEO"
DOCUMENT = "DOCUMENT"

# The accepted types by default (AGNO_GRAPHQL_ATTACHMENT_TYPES), each with its kind.
KIND_OF_TYPE: dict[str, str] = {
    "image/png": IMAGE,
    "image/jpeg": IMAGE,
    "image/webp": IMAGE,
    "image/gif": IMAGE,
    "audio/wav": AUDIO,
    "audio/mpeg": AUDIO,
    "audio/ogg": AUDIO,
    "audio/webm": AUDIO,
    "video/mp4": VIDEO,
    "video/webm": VIDEO,
    "application/pdf": DOCUMENT,
    "text/plain": DOCUMENT,
    "text/markdown": DOCUMENT,
    "text/csv": DOCUMENT,
    "application/json": DOCUMENT,
    "text/html": DOCUMENT,
}
DEFAULT_TYPES = tuple(KIND_OF_TYPE)

# Other names clients and libraries give the same types (browsers, Python's mimetypes, filetype).
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "audio/x-mpeg": "audio/mpeg",
    "text/x-markdown": "text/markdown",
    "application/x-json": "application/json",
    "text/json": "application/json",
    "application/csv": "text/csv",
    "application/vnd.ms-excel": "text/csv",  # what Windows browsers declare for .csv
}


def normalized(mime_type: str) -> str:
    base = mime_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)
