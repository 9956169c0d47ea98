"""Attachments as Agno takes them on `arun`: `images`, `audio`, `videos` and `files`, each a reference into the
agent's media storage that Agno resolves when it sends the model the message (the bytes are never in the run)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agno.agent import Agent
from agno.media import Audio, File, Image, Video
from agno.media.storage.base import AsyncMediaStorage

from agno_graphql.media.storage import facts, reference
from agno_graphql.media.types import AUDIO, IMAGE, VIDEO
from agno_graphql.records import POSITION_KEY, AttachmentRecord

# Agno's OpenAI model sends audio with its format ("mp3", not "mpeg").
_AUDIO_FORMATS = {"audio/mpeg": "mp3", "audio/wav": "wav", "audio/ogg": "ogg", "audio/webm": "webm"}


@dataclass(frozen=True)
class RunMedia:
    """A message's attachments as `arun` takes them."""

    images: list[Image] = field(default_factory=list)
    audio: list[Audio] = field(default_factory=list)
    videos: list[Video] = field(default_factory=list)
    files: list[File] = field(default_factory=list)

    def stored(self) -> dict[str, list[dict[str, Any]]]:
        """As Agno stores them in a message (references, never bytes): what the history reads before Agno has
        written the run."""
        lists: dict[str, Sequence[Image | Audio | Video | File]] = {
            "images": self.images,
            "audio": self.audio,
            "videos": self.videos,
            "files": self.files,
        }
        return {
            key: [item.to_dict(include_base64_content=False) for item in items] for key, items in lists.items() if items
        }


def run_media(attachments: Sequence[AttachmentRecord], agent: Agent, session_id: str) -> RunMedia:
    """References into the agent's media storage (the registry gives every agent the app's)."""
    media = RunMedia()
    storage = agent.media_storage
    if not attachments or not isinstance(storage, AsyncMediaStorage):
        return media
    for position, record in enumerate(attachments):
        common: dict[str, Any] = {
            "id": record.id,
            "media_reference": reference(record, storage, session_id),
            "mime_type": record.mime_type,
            # Agno keeps one list per kind: the position gives the history the order they were sent in.
            "metadata": {**facts(record), POSITION_KEY: position},
        }
        if record.kind == IMAGE:
            media.images.append(Image(**common))
        elif record.kind == AUDIO:
            media.audio.append(Audio(**common, format=_AUDIO_FORMATS.get(record.mime_type)))
        elif record.kind == VIDEO:
            media.videos.append(Video(**common))
        else:
            media.files.append(File(**common, filename=record.name))
    return media
