"""Enums of the API."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum
class MessageRole(Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@strawberry.enum
class RunStatus(Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    PAUSED = "PAUSED"


@strawberry.enum(description="What a run does when the connection that started it goes away.")
class DisconnectPolicy(Enum):
    CONTINUE = "CONTINUE"
    CANCEL = "CANCEL"


@strawberry.enum(description="What happened to a session.")
class SessionEventKind(Enum):
    CREATED = "CREATED"
    RENAMED = "RENAMED"
    RUN_STARTED = "RUN_STARTED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"
    RUN_PAUSED = "RUN_PAUSED"


@strawberry.enum(description="What a paused run waits for.")
class RequirementKind(Enum):
    CONFIRMATION = "CONFIRMATION"
    USER_INPUT = "USER_INPUT"
    USER_FEEDBACK = "USER_FEEDBACK"
    EXTERNAL_EXECUTION = "EXTERNAL_EXECUTION"


@strawberry.enum
class SessionOrderField(Enum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"


@strawberry.enum
class OrderDirection(Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.enum(description="What runAgent does when a run is already going in the session.")
class BusyPolicy(Enum):
    REJECT = "REJECT"
    INTERRUPT = "INTERRUPT"
    ENQUEUE = "ENQUEUE"


@strawberry.enum(description="What an attachment is, read from its bytes.")
class AttachmentKind(Enum):
    IMAGE = "IMAGE"
    AUDIO = "AUDIO"
    VIDEO = "VIDEO"
    DOCUMENT = "DOCUMENT"
