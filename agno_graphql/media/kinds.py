"""What an uploaded file is, read from its bytes: the type by magic numbers (text: UTF-8 with no NUL byte, its
subtype from the extension), checked against the declared type and the extension, with what is measured of it."""

from __future__ import annotations

import codecs
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

import filetype
import ijson
from PIL import Image, UnidentifiedImageError

from agno_graphql.errors import BadUserInput
from agno_graphql.media.types import DOCUMENT, IMAGE, KIND_OF_TYPE, normalized

_TEXT_BY_EXTENSION = {
    "": "text/plain",
    "txt": "text/plain",
    "text": "text/plain",
    "md": "text/markdown",
    "markdown": "text/markdown",
    "csv": "text/csv",
    "json": "application/json",
    "html": "text/html",
    "htm": "text/html",
}
_UNDECLARED = {"", "application/octet-stream"}
HEAD_BYTES = 64 * 1024
CHUNK_BYTES = 1024 * 1024
_FIRST_LINE_CHARS = 200


@dataclass(frozen=True, slots=True)
class Measured:
    """An accepted upload as read from its bytes."""

    mime_type: str
    kind: str
    byte_size: int
    width: int | None = None
    height: int | None = None
    first_line: str | None = None  # a text document's, for the offline model and previews


def extension_of(name: str) -> str:
    stem, dot, extension = name.rpartition(".")
    return extension.lower() if dot and stem else ""


def measure(file: BinaryIO, name: str, declared: str, accepted: Iterable[str]) -> Measured:
    """Read the file (from its start, in chunks) and say what it is; BadUserInput for an empty file, a type that is
    unknown or not accepted, or one that the declared content type or the extension contradicts."""
    file.seek(0)
    head = file.read(HEAD_BYTES)
    if not head:
        raise BadUserInput(f"{name!r} is empty.")
    mime_type = _binary_type(head) or _text_type(file, head, name)
    accepted_types = {normalized(t) for t in accepted}
    if mime_type not in accepted_types or mime_type not in KIND_OF_TYPE:
        raise BadUserInput(f"{name!r} is {mime_type}, which is not accepted here.")
    _check_declared(name, declared, mime_type)
    _check_extension(name, mime_type)
    size = _size(file)
    width = height = None
    if KIND_OF_TYPE[mime_type] == IMAGE:
        width, height = _image_size(file, name)
    first_line = _first_line(head) if mime_type.startswith("text/") or mime_type == "application/json" else None
    return Measured(mime_type, KIND_OF_TYPE[mime_type], size, width, height, first_line)


def _binary_type(head: bytes) -> str | None:
    guess = filetype.guess(head)
    if guess is None:
        return None
    mime_type = normalized(guess.mime)
    if mime_type == "video/webm" and not webm_has_video(head):
        return "audio/webm"
    return mime_type


def _text_type(file: BinaryIO, head: bytes, name: str) -> str:
    mime_type = _TEXT_BY_EXTENSION.get(extension_of(name))
    if not _is_utf8_text(file):
        raise BadUserInput(f"The type of {name!r} is not one this server knows.")
    if mime_type is None:
        raise BadUserInput(f"{name!r} is text, but its extension names no accepted document type.")
    if mime_type == "application/json" and not _parses_as_json(file):
        raise BadUserInput(f"{name!r} is not valid JSON.")
    return mime_type


def _is_utf8_text(file: BinaryIO) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    file.seek(0)
    try:
        while chunk := file.read(CHUNK_BYTES):
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _parses_as_json(file: BinaryIO) -> bool:
    file.seek(0)
    try:
        for _ in ijson.parse(file, buf_size=CHUNK_BYTES):
            pass
    except ijson.JSONError:
        return False
    return True


def _check_declared(name: str, declared: str, mime_type: str) -> None:
    said = normalized(declared or "")
    if said in _UNDECLARED or said == mime_type:
        return
    # A generic text type fits every text document (browsers declare text/plain for a .md or .csv).
    if said == "text/plain" and KIND_OF_TYPE[mime_type] == DOCUMENT and mime_type != "application/pdf":
        return
    raise BadUserInput(f"{name!r} is declared {declared}, but its bytes are {mime_type}.")


def _check_extension(name: str, mime_type: str) -> None:
    extension = extension_of(name)
    if not extension:
        return
    named = _TEXT_BY_EXTENSION.get(extension) or mimetypes.guess_type(f"x.{extension}", strict=False)[0]
    if named is None:
        return
    named = normalized(named)
    same_container = {named, mime_type} <= {"audio/webm", "video/webm"} or {named, mime_type} <= {
        "audio/ogg",
        "video/ogg",
    }
    if named != mime_type and not same_container:
        raise BadUserInput(f"{name!r} has the extension of {named}, but its bytes are {mime_type}.")


def _size(file: BinaryIO) -> int:
    file.seek(0, 2)
    size = file.tell()
    file.seek(0)
    return size


def _image_size(file: BinaryIO, name: str) -> tuple[int, int]:
    """From the header only: Pillow reads the size without decoding the pixels."""
    file.seek(0)
    try:
        with Image.open(file) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise BadUserInput(f"{name!r} is not an image that can be read.") from None
    finally:
        file.seek(0)
    return int(width), int(height)


def _first_line(head: bytes) -> str:
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff")
    return text.split("\n", 1)[0].strip()[:_FIRST_LINE_CHARS]


# --- WebM: a video track or audio only ---

_SEGMENT = 0x18538067
_TRACKS = 0x1654AE6B
_TRACK_ENTRY = 0xAE
_TRACK_TYPE = 0x83
_CLUSTER = 0x1F43B675
_VIDEO_TRACK = 1


def webm_has_video(head: bytes) -> bool:
    """True when the Tracks element in the file's first bytes lists a video track (EBML, Matroska's spec);
    a head with no readable Tracks counts as video, the type filetype named."""
    found = _track_types(head)
    return found is None or _VIDEO_TRACK in found


def _track_types(data: bytes) -> set[int] | None:
    position = 0
    while position < len(data):
        element = _element(data, position)
        if element is None:
            return None
        element_id, start, size = element
        if element_id == _SEGMENT:
            position = start  # its children follow (its size is often "unknown")
            continue
        if element_id == _CLUSTER:
            return None
        if element_id == _TRACKS:
            return _types_in_tracks(data[start : start + size] if size is not None else data[start:])
        if size is None:
            return None
        position = start + size
    return None


def _types_in_tracks(tracks: bytes) -> set[int]:
    types: set[int] = set()
    position = 0
    while (element := _element(tracks, position)) is not None:
        element_id, start, size = element
        end = len(tracks) if size is None else start + size
        if element_id == _TRACK_ENTRY:
            inner = tracks[start:end]
            inner_position = 0
            while (child := _element(inner, inner_position)) is not None:
                child_id, child_start, child_size = child
                if child_size is None:
                    break
                if child_id == _TRACK_TYPE:
                    types.add(int.from_bytes(inner[child_start : child_start + child_size], "big"))
                inner_position = child_start + child_size
        position = end
    return types


def _element(data: bytes, position: int) -> tuple[int, int, int | None] | None:
    """(id, where its data starts, its size or None when unknown) of the EBML element at `position`."""
    id_part = _vint(data, position, keep_marker=True)
    if id_part is None:
        return None
    element_id, after_id = id_part
    size_part = _vint(data, after_id, keep_marker=False)
    if size_part is None:
        return None
    size, start = size_part
    length = start - after_id
    unknown = size == (1 << (7 * length)) - 1
    return element_id, start, None if unknown else size


def _vint(data: bytes, position: int, *, keep_marker: bool) -> tuple[int, int] | None:
    if position >= len(data) or data[position] == 0:
        return None
    first = data[position]
    length = 8 - first.bit_length() + 1
    if position + length > len(data):
        return None
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for byte in data[position + 1 : position + length]:
        value = (value << 8) | byte
    return value, position + length
