"""GraphQL results streamed over plain HTTP: picking the stream a client asked for, and framing SSE events.

Strawberry streams a subscription over HTTP as graphql-sse (distinct connections mode,
`Accept: text/event-stream`) or as a multipart subscription (`Accept: multipart/mixed;subscriptionSpec=1.0`,
Apollo Client's HttpLink). Two details are ours:

- Strawberry streams whenever a streaming type appears anywhere in `Accept`. urql lists
  `text/event-stream` and `multipart/mixed` after the JSON types on every query, so its plain queries
  would come back as event streams. Here the client's most preferred type wins (by q, then by order):
  JSON first means a plain JSON response.
- Strawberry ends SSE lines with CRLF, which the event-stream format allows but urql's parser (blank LF
  line between events) does not understand. LF alone is read by every client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from strawberry.http.streaming import HTTPStreamTransport, MultipartSubscriptionTransport, SSETransport
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL

# Media ranges that ask for one plain JSON response.
JSON_MEDIA_TYPES = frozenset(
    {"application/json", "application/graphql-response+json", "application/graphql+json", "application/*", "*/*"}
)


class LineFeedSSETransport(SSETransport):
    """Strawberry's graphql-sse events, each line ended by LF."""

    def encode_event(self, event: str, data: str | None = None) -> str:
        return super().encode_event(event, data).replace("\r\n", "\n")

    def encode_comment(self, comment: str) -> str:
        return f": {comment}\n\n"


STREAM_TRANSPORTS: Mapping[str, type[HTTPStreamTransport]] = {
    MULTIPART_SUBSCRIPTION_PROTOCOL: MultipartSubscriptionTransport,
    GRAPHQL_SSE_PROTOCOL: LineFeedSSETransport,
}


def accept_header(headers: Mapping[str, str]) -> str:
    return next((value for key, value in headers.items() if key.lower() == "accept"), "")


def _quality(media_range: str) -> float:
    for parameter in media_range.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


def prefers_graphql_response_json(accept: str) -> bool:
    """Whether the client asks for the GraphQL-over-HTTP media type before plain JSON (or anything else)."""
    ranges = [part.strip() for part in accept.split(",") if part.strip()]
    for media_range in sorted(ranges, key=_quality, reverse=True):
        if _quality(media_range) > 0:
            return media_range.split(";", 1)[0].strip().lower() == GRAPHQL_RESPONSE_JSON
    return False


def preferred_stream_transport(accept: str, transports: Iterable[HTTPStreamTransport]) -> HTTPStreamTransport | None:
    """The stream transport of the most preferred media range in `accept`; None when JSON is preferred."""
    candidates = list(transports)
    ranges = [part.strip() for part in accept.split(",") if part.strip()]
    # Stable sort: equal qualities keep the client's order.
    for media_range in sorted(ranges, key=_quality, reverse=True):
        if _quality(media_range) <= 0:
            continue
        media_type = media_range.split(";", 1)[0].strip().lower()
        if media_type in JSON_MEDIA_TYPES:
            return None
        for transport in candidates:
            if transport.accepts(media_range):
                return transport
    return None
