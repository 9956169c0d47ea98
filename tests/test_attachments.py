"""Attachments on a real server, on SQLite and MariaDB: upload (GraphQL multipart), checked from the bytes, stored
in Agno's media storage, sent with a message to the model, listed in the history, downloaded by signed link, and
removed with their session or when never sent."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from agno_graphql.db.history import as_dict
from agno_graphql.media.links import LinkSigner, ensure_link_secret
from tests.attachment_support import (
    ATTACHMENT,
    HISTORY,
    MP3,
    RUN_WITH,
    download,
    png,
    stored_files,
    upload,
    upload_errors,
    upload_response,
)
from tests.client import execute, operation, subscribe
from tests.conftest import RunningServer, make_token, serving_with
from tests.matrix_support import codes, create_session, errors_of, poll
from tests.media_agents import DRAWN_SIZE
from tests.run_support import LONG_MESSAGE, subscription, wait_for_status
from tests.test_regenerate import edit, regenerate

RUN_STATUS = "query($id: ID!) { run(id: $id) { id status } }"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


async def run_with(
    server: RunningServer, token: str, attachments: list[str], session_id: str | None = None, message: str = "look"
) -> list[dict[str, Any]]:
    variables = {
        "input": {"agentId": "assistant", "message": message, "sessionId": session_id, "attachments": attachments}
    }
    return [event["runAgent"] for event in await subscribe(server, token, RUN_WITH, variables)]


async def test_an_uploaded_image_is_measured_from_its_bytes(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    attachment = await upload(server, token, "screenshot.png", png(32, 24), "image/png")
    assert attachment["name"] == "screenshot.png"
    assert attachment["mimeType"] == "image/png"
    assert attachment["kind"] == "IMAGE"
    assert (attachment["width"], attachment["height"]) == (32, 24)
    assert attachment["byteSize"] == len(png(32, 24))
    found = (await execute(server, token, ATTACHMENT, {"id": attachment["id"]}))["attachment"]
    assert {k: v for k, v in found.items() if k != "url"} == {
        k: v for k, v in attachment.items() if k not in ("url", "createdAt")
    }


async def test_an_attachment_is_null_to_anyone_but_its_uploader(server: RunningServer, user_id: str) -> None:
    attachment = await upload(server, make_token(user_id), "notes.txt", b"mine\n")
    other = await execute(server, make_token(f"{user_id}-other"), ATTACHMENT, {"id": attachment["id"]})
    assert other == {"attachment": None}


async def test_a_text_document_takes_its_type_from_its_extension(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    cases = {
        "notes.md": ("# Title\nbody", "text/markdown"),
        "table.csv": ("a,b\n1,2\n", "text/csv"),
        "data.json": ('{"a": [1, 2, {"b": null}]}', "application/json"),
        "page.html": ("<!doctype html><p>hi</p>", "text/html"),
        "plain": ("no extension at all", "text/plain"),
    }
    for name, (text, mime_type) in cases.items():
        attachment = await upload(server, token, name, text.encode(), "text/plain")
        assert (attachment["mimeType"], attachment["kind"]) == (mime_type, "DOCUMENT"), name
    assert (await upload(server, token, "doc.pdf", PDF, "application/pdf"))["mimeType"] == "application/pdf"


@pytest.mark.parametrize(
    ("name", "content", "declared", "says"),
    [
        ("empty.txt", b"", None, "empty"),
        ("photo.png", png(2, 2), "image/jpeg", "declared image/jpeg"),
        ("photo.jpg", png(2, 2), None, "extension of image/jpeg"),
        ("notes.txt", PDF, None, "extension of text/plain"),
        ("blob.bin", bytes(range(256)) * 4, None, "not one this server knows"),
        ("nul.txt", b"text\x00more", None, "not one this server knows"),
        ("latin.txt", "café".encode("latin-1"), None, "not one this server knows"),
        ("broken.json", b'{"a": [1, 2', None, "not valid JSON"),
        ("script.py", b"print('hi')\n", None, "names no accepted document type"),
    ],
)
async def test_a_file_that_is_not_what_it_says_is_refused_and_nothing_is_kept(
    server: RunningServer, user_id: str, name: str, content: bytes, declared: str | None, says: str
) -> None:
    before = stored_files(server)
    errors = await upload_errors(server, make_token(user_id), name, content, declared)
    assert codes(errors) == ["BAD_USER_INPUT"]
    assert says in errors[0]["message"]
    assert stored_files(server) == before


async def test_a_download_link_serves_the_bytes_with_no_header(server: RunningServer, user_id: str) -> None:
    content = png(8, 8)
    attachment = await upload(server, make_token(user_id), "a picture.png", content)
    response = await download(server, attachment["url"])
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["content-disposition"] == "inline; filename*=UTF-8''a%20picture.png"


async def test_html_downloads_as_a_file_never_as_a_page(server: RunningServer, user_id: str) -> None:
    attachment = await upload(server, make_token(user_id), "page.html", b"<script>alert(1)</script>")
    response = await download(server, attachment["url"])
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == "sandbox"


async def test_a_changed_or_expired_link_answers_404(server: RunningServer, user_id: str) -> None:
    attachment = await upload(server, make_token(user_id), "x.png", png(1, 1))
    other = await upload(server, make_token(user_id), "y.png", png(2, 1))
    url = attachment["url"]
    assert (await download(server, url)).status_code == 200
    changed_signature = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert (await download(server, changed_signature)).status_code == 404
    changed_id = url.replace(attachment["id"], other["id"])
    assert (await download(server, changed_id)).status_code == 404
    secret, _ = ensure_link_secret("", server.settings.state_path)
    signer = LinkSigner(secret, server.settings.attachment_url_seconds)
    assert (await download(server, signer.url(attachment["id"], user_id, "x.png"))).status_code == 200
    expired = signer.url(attachment["id"], user_id, "x.png", now=time.time() - 2 * signer.valid_seconds)
    assert (await download(server, expired)).status_code == 404
    someone_else = signer.url(attachment["id"], f"{user_id}-other", "x.png")
    assert (await download(server, someone_else)).status_code == 404


async def test_each_read_of_url_makes_a_fresh_link(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    attachment = await upload(server, token, "x.png", png(1, 1))
    time.sleep(1.1)  # the expiry is in whole seconds
    again = (await execute(server, token, ATTACHMENT, {"id": attachment["id"]}))["attachment"]
    assert again["url"] != attachment["url"]
    assert (await download(server, again["url"])).status_code == 200


async def test_the_model_gets_the_attachments_and_the_history_lists_them(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    image = await upload(server, token, "chart.png", png(40, 30))
    notes_text = b"# Quarterly notes\nrevenue up\n"
    notes = await upload(server, token, "notes.md", notes_text)
    events = await run_with(server, token, [image["id"], notes["id"]], message="what are these?")
    assert events[-1]["__typename"] == "RunCompleted", events[-1]
    answer = events[-1]["content"]
    image_size = len(png(40, 30))
    assert f"chart.png (image, {image_size} bytes, 40x30, {image_size} bytes received)" in answer
    size = len(notes_text)
    assert f"notes.md (document, {size} bytes, first line: '# Quarterly notes', {size} bytes received)" in answer
    messages = (await execute(server, token, HISTORY, {"id": events[0]["sessionId"]}))["session"]["messages"]
    user_message = next(m for m in messages["nodes"] if m["role"] == "USER")
    listed = user_message["attachments"]
    assert [(a["id"], a["name"], a["kind"], a["byteSize"]) for a in listed] == [
        (image["id"], "chart.png", "IMAGE", image_size),
        (notes["id"], "notes.md", "DOCUMENT", size),
    ]
    assert (listed[0]["width"], listed[0]["height"]) == (40, 30)
    assert (await download(server, listed[0]["url"])).content == png(40, 30)
    assistant = next(m for m in messages["nodes"] if m["role"] == "ASSISTANT")
    assert assistant["attachments"] == []


async def test_the_history_lists_attachments_in_the_order_sent(server: RunningServer, user_id: str) -> None:
    """Agno keeps a list per kind; a document sent before an image stays before it."""
    token = make_token(user_id)
    sent = [
        await upload(server, token, "notes.txt", b"first\n"),
        await upload(server, token, "song.mp3", MP3),
        await upload(server, token, "chart.png", png(2, 2)),
    ]
    events = await run_with(server, token, [a["id"] for a in sent])
    messages = (await execute(server, token, HISTORY, {"id": events[0]["sessionId"]}))["session"]["messages"]
    user_message = next(m for m in messages["nodes"] if m["role"] == "USER")
    assert [a["name"] for a in user_message["attachments"]] == ["notes.txt", "song.mp3", "chart.png"]


async def test_an_attachment_belongs_to_the_first_session_it_is_sent_in(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    attachment = await upload(server, token, "x.png", png(3, 3))
    first = await run_with(server, token, [attachment["id"]])
    session_id = first[0]["sessionId"]
    again = await run_with(server, token, [attachment["id"]], session_id=session_id, message="and again")
    assert again[-1]["__typename"] == "RunCompleted"
    elsewhere = str((await create_session(server, token))["id"])
    errors = await errors_of(run_with(server, token, [attachment["id"]], session_id=elsewhere))
    assert codes(errors) == ["BAD_USER_INPUT"]
    assert errors[0]["extensions"]["attachmentId"] == attachment["id"]
    new_session = await errors_of(run_with(server, token, [attachment["id"]]))
    assert codes(new_session) == ["BAD_USER_INPUT"]


async def test_someone_elses_or_a_missing_attachment_is_not_found(server: RunningServer, user_id: str) -> None:
    theirs = await upload(server, make_token(f"{user_id}-owner"), "x.png", png(1, 1))
    token = make_token(user_id)
    for attachment_id in (theirs["id"], "00000000-0000-0000-0000-000000000000"):
        errors = await errors_of(run_with(server, token, [attachment_id]))
        assert codes(errors) == ["NOT_FOUND"]
    # Nothing of the refused runs was started: no session was made for them.
    assert (await execute(server, token, operation("Sessions"), {}))["sessions"]["totalCount"] == 0


async def test_deleting_a_session_deletes_its_attachments_bytes(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    attachment = await upload(server, token, "x.png", png(5, 5))
    kept = await upload(server, token, "kept.png", png(6, 5))
    events = await run_with(server, token, [attachment["id"]])
    files = stored_files(server)
    assert any(attachment["id"] in f.name for f in files)
    await execute(server, token, operation("DeleteSession"), {"input": {"sessionId": events[0]["sessionId"]}})
    assert not any(attachment["id"] in f.name for f in stored_files(server))
    assert (await download(server, attachment["url"])).status_code == 404
    assert (await execute(server, token, ATTACHMENT, {"id": attachment["id"]}))["attachment"] is None
    assert (await download(server, kept["url"])).status_code == 200


@pytest.fixture
def short_keep_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with serving_with(new_database_url, tmp_path_factory, "att-unsent", attachment_unused_seconds=3) as running:
        yield running


async def test_an_upload_never_sent_is_removed_in_time(short_keep_server: RunningServer, user_id: str) -> None:
    server, token = short_keep_server, make_token(user_id)
    sent = await upload(server, token, "sent.png", png(2, 3))
    await run_with(server, token, [sent["id"]])
    unsent = await upload(server, token, "unsent.png", png(2, 2))

    async def removed() -> bool:
        return (await execute(server, token, ATTACHMENT, {"id": unsent["id"]}))["attachment"] is None

    assert await poll(removed, attempts=150)
    assert not any(unsent["id"] in f.name for f in stored_files(server))
    assert (await execute(server, token, ATTACHMENT, {"id": sent["id"]}))["attachment"] is not None
    assert any(sent["id"] in f.name for f in stored_files(server))


async def test_an_upload_without_a_token_is_refused_before_its_body_is_read(server: RunningServer) -> None:
    before = stored_files(server)
    response = await upload_response(server, None, "x.png", png(2, 2))
    assert response.status_code == 401
    assert codes(response.json()["errors"]) == ["UNAUTHENTICATED"]
    bad = await upload_response(server, "not-a-token", "x.png", png(2, 2))
    assert bad.status_code == 401
    assert stored_files(server) == before


async def test_one_file_per_request(server: RunningServer, user_id: str) -> None:
    import httpx

    operations = {"query": "mutation($a: Upload!) { uploadAttachment(input: {file: $a}) { attachment { id } } }"}
    operations["variables"] = {"a": None}  # type: ignore[assignment]
    fields = {"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.a"], "1": ["variables.a"]})}
    files = {"0": ("a.png", png(1, 1)), "1": ("b.png", png(1, 1))}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            server.http_url, headers={"Authorization": f"Bearer {make_token(user_id)}"}, data=fields, files=files
        )
    assert response.status_code == 400
    assert "one file" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("written", ['"a string"', "42", "$file"])
async def test_an_upload_written_into_the_document_is_refused(
    server: RunningServer, user_id: str, written: str
) -> None:
    """Only a multipart request's file is an Upload; a literal, or a variable sent as JSON, never reaches storage."""
    before = stored_files(server)
    document = f"mutation($file: Upload!) {{ uploadAttachment(input: {{file: {written}}}) {{ attachment {{ id }} }} }}"
    if written != "$file":
        document = document.replace("($file: Upload!)", "")
    errors = await errors_of(execute(server, make_token(user_id), document, {"file": "bytes?"}))
    assert codes(errors) == ["BAD_USER_INPUT"], errors
    assert "multipart" in errors[0]["message"]
    assert stored_files(server) == before


@pytest.fixture
def small_limits_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with serving_with(
        new_database_url,
        tmp_path_factory,
        "att-limits",
        max_attachment_bytes=4096,
        max_attachments_per_message=2,
        attachment_types=("image/png", "text/plain"),
    ) as running:
        yield running


async def test_the_attachment_limits_are_settings(small_limits_server: RunningServer, user_id: str) -> None:
    server, token = small_limits_server, make_token(user_id)
    over = await upload_errors(server, token, "big.txt", b"a" * 4097)
    assert codes(over) == ["BAD_USER_INPUT"] and over[0]["extensions"]["maxBytes"] == 4096
    refused = await upload_errors(server, token, "doc.pdf", PDF)
    assert codes(refused) == ["BAD_USER_INPUT"] and "not accepted" in refused[0]["message"]
    far_over = await upload_response(server, token, "huge.txt", b"a" * (4096 + 65 * 1024))
    assert far_over.status_code == 413
    ids = [(await upload(server, token, f"{n}.txt", b"%d\n" % n))["id"] for n in range(3)]
    too_many = await errors_of(run_with(server, token, ids))
    assert codes(too_many) == ["BAD_USER_INPUT"] and too_many[0]["extensions"]["maxAttachments"] == 2
    assert (await run_with(server, token, ids[:2]))[-1]["__typename"] == "RunCompleted"
    assert stored_files(server) and all(f.stat().st_size < 4096 for f in stored_files(server))


@pytest.fixture
def painter_server(
    new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with serving_with(
        new_database_url, tmp_path_factory, "att-made", agents="tests.media_agents:make_agents"
    ) as running:
        yield running


async def test_an_image_a_tool_makes_is_an_attachment_of_the_answer(
    painter_server: RunningServer, user_id: str
) -> None:
    server, token = painter_server, make_token(user_id)
    events = [
        e["runAgent"]
        for e in await subscribe(
            server, token, RUN_WITH, {"input": {"agentId": "painter", "message": "use the draw tool"}}
        )
    ]
    assert events[-1]["__typename"] == "RunCompleted", events[-1]
    session = (await execute(server, token, HISTORY, {"id": events[0]["sessionId"]}))["session"]
    messages = session["messages"]["nodes"]
    # Agno hands the image to the model in a user message of its own: not the user's, so not in the conversation.
    assert [m["role"] for m in messages] == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    assert all(m["attachments"] == [] for m in messages[:-1])
    (made,) = messages[-1]["attachments"]
    assert (made["kind"], made["mimeType"]) == ("IMAGE", "image/png")
    assert made["byteSize"] == len(png(*DRAWN_SIZE))
    assert (await download(server, made["url"])).content == png(*DRAWN_SIZE)
    assert (await execute(server, token, ATTACHMENT, {"id": made["id"]}))["attachment"]["id"] == made["id"]
    counted = await execute(
        server,
        token,
        "query($id: ID!) { session(id: $id) { messages { totalCount } } }",
        {"id": events[0]["sessionId"]},
    )
    assert counted["session"]["messages"]["totalCount"] == len(messages)


async def test_media_that_cannot_be_stored_fails_the_run_with_a_code(
    painter_server: RunningServer, user_id: str
) -> None:
    """Agno keeps a medium inline when its storage fails (the bytes in the run's row): the run fails instead,
    MEDIA_STORE_FAILED, and its row keeps no bytes."""
    server, token = painter_server, make_token(user_id)
    media = server.settings.media_path
    moved = media.with_name("media-away")
    media.rename(moved)
    media.write_text("a file where the media folder was: every write into it fails")
    try:
        events = [
            e["runAgent"]
            for e in await subscribe(
                server, token, RUN_WITH, {"input": {"agentId": "painter", "message": "use the draw tool"}}
            )
        ]
    finally:
        media.unlink()
        moved.rename(media)
    assert (events[-1]["__typename"], events[-1]["code"]) == ("RunFailed", "MEDIA_STORE_FAILED"), events[-1]
    run = (await execute(server, token, RUN_STATUS, {"id": events[0]["runId"]}))["run"]
    assert run["status"] == "ERROR"
    messages = (await execute(server, token, HISTORY, {"id": events[0]["sessionId"]}))["session"]["messages"]
    assert all(m["attachments"] == [] for m in messages["nodes"])
    roles = [m["role"] for m in messages["nodes"]]
    assert roles[0] == "USER" and roles[-1] == "ASSISTANT", roles  # the exchange's text is kept
    assert messages["nodes"][-1]["content"]
    engine = sqlalchemy.create_engine(server.settings.database_url)
    try:
        with engine.connect() as conn:
            query = sqlalchemy.text("SELECT run_data FROM agno_runs WHERE run_id = :id")
            data = as_dict(conn.execute(query, {"id": events[0]["runId"]}).scalar_one())
    finally:
        engine.dispose()
    holders = [data, *data.get("messages", [])]
    assert not [item for h in holders for item in h.get("images") or [] if "content" in item]  # no bytes kept


async def test_a_regenerated_answer_sees_the_same_attachments(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    image = await upload(server, token, "again.png", png(7, 7))
    first = await run_with(server, token, [image["id"]], message="what is it")
    again = await regenerate(server, token, first[-1]["runId"])
    assert again[-1]["__typename"] == "RunCompleted", again[-1]
    assert "again.png (image" in again[-1]["content"] and "bytes received" in again[-1]["content"]
    messages = (await execute(server, token, HISTORY, {"id": first[0]["sessionId"]}))["session"]["messages"]["nodes"]
    assert [a["id"] for m in messages if m["role"] == "USER" for a in m["attachments"]] == [image["id"]]


async def test_an_edited_message_carries_the_attachments_it_is_given(server: RunningServer, user_id: str) -> None:
    token = make_token(user_id)
    kept = await upload(server, token, "kept.png", png(3, 2))
    dropped = await upload(server, token, "dropped.txt", b"old notes\n")
    added = await upload(server, token, "added.txt", b"new notes\n")
    first = await run_with(server, token, [kept["id"], dropped["id"]], message="first try")
    session_id = first[0]["sessionId"]
    messages = (await execute(server, token, HISTORY, {"id": session_id}))["session"]["messages"]["nodes"]
    user_message = next(m for m in messages if m["role"] == "USER")
    edited = await edit(server, token, user_message["id"], "second try", [kept["id"], added["id"]])
    assert edited[-1]["__typename"] == "RunCompleted", edited[-1]
    assert "kept.png" in edited[-1]["content"] and "added.txt" in edited[-1]["content"]
    assert "dropped.txt" not in edited[-1]["content"]
    messages = (await execute(server, token, HISTORY, {"id": session_id}))["session"]["messages"]["nodes"]
    now = next(m for m in messages if m["role"] == "USER")
    assert now["content"] == "second try"
    assert [a["name"] for a in now["attachments"]] == ["kept.png", "added.txt"]


@pytest.fixture(scope="module")
def slow_server(new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A demo model slow enough (40 ms a word) that the history is read while runs still stream."""
    with serving_with(new_database_url, tmp_path_factory, "att-slow", offline_delay_ms=40) as running:
        yield running


async def user_attachments_of_run(server: RunningServer, token: str, session_id: str, run_id: str) -> list[str]:
    nodes = (await execute(server, token, HISTORY_WITH_RUNS, {"id": session_id}))["session"]["messages"]["nodes"]
    return [a["id"] for m in nodes if m["runId"] == run_id and m["role"] == "USER" for a in m["attachments"]]


HISTORY_WITH_RUNS = HISTORY.replace("nodes { id role content", "nodes { id runId role content")


async def test_a_message_shows_its_attachments_while_its_answer_streams(slow_server: Any, user_id: str) -> None:
    """Another tab, or a reload, reads the history mid-run: the user's message already carries what it sent, also
    once a message that waited in line starts."""
    server, token = slow_server, make_token(user_id)
    session_id = str((await create_session(server, token))["id"])
    first, second = [await upload(server, token, f"{n}.png", png(n, n)) for n in (3, 4)]
    inputs = [
        {"agentId": "assistant", "sessionId": session_id, "message": LONG_MESSAGE, "attachments": [a["id"]]}
        for a in (first, second)
    ]
    async with (
        subscription(server, token, RUN_WITH, {"input": inputs[0]}) as running,
        subscription(server, token, RUN_WITH, {"input": {**inputs[1], "ifBusy": "ENQUEUE"}}) as queued,
    ):
        head = await asyncio.wait_for(running.events("runAgent", stop_after=2), timeout=30)
        assert await user_attachments_of_run(server, token, session_id, head[0]["runId"]) == [first["id"]]
        told = await asyncio.wait_for(queued.events("runAgent", stop_after=1), timeout=30)
        assert told[0]["__typename"] == "RunQueued"
        await wait_for_status(server, token, told[0]["runId"], {"RUNNING"})
        assert await user_attachments_of_run(server, token, session_id, told[0]["runId"]) == [second["id"]]
        await asyncio.wait_for(queued.events("runAgent"), timeout=90)
    # Once Agno has written the runs, the same.
    assert await user_attachments_of_run(server, token, session_id, head[0]["runId"]) == [first["id"]]
    assert await user_attachments_of_run(server, token, session_id, told[0]["runId"]) == [second["id"]]


def spooled_files_open() -> int:
    """Files this process (the in-thread servers') holds open in the temporary folder, deleted ones included."""
    folder, fds = tempfile.gettempdir(), Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if _link(fd).startswith(folder))


def _link(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:  # closed meanwhile
        return ""


async def test_an_uploads_spooled_file_is_closed_once_answered(server: RunningServer, user_id: str) -> None:
    """Starlette spools a part over 1 MiB to TMPDIR: left to the garbage collector, each upload held its size on
    disk and a file descriptor (bench/attachments.py saw 60 MiB held after three 20 MiB uploads)."""
    token = make_token(user_id)
    before = spooled_files_open()
    for _ in range(3):
        await upload(server, token, "big.txt", b"a line of text\n" * 150_000)
    assert spooled_files_open() == before


async def test_an_image_may_be_sent_without_text(server: RunningServer, user_id: str) -> None:
    """As in chat apps: a screenshot alone. Without attachments an empty message is still refused."""
    token = make_token(user_id)
    image = await upload(server, token, "alone.png", png(5, 4))
    events = await run_with(server, token, [image["id"]], message="")
    assert events[-1]["__typename"] == "RunCompleted", events[-1]
    assert events[-1]["content"].startswith("You sent alone.png (image")
    messages = (await execute(server, token, HISTORY, {"id": events[0]["sessionId"]}))["session"]["messages"]
    user_message = next(m for m in messages["nodes"] if m["role"] == "USER")
    assert (user_message["content"], [a["id"] for a in user_message["attachments"]]) == ("", [image["id"]])
    refused = await errors_of(run_with(server, token, [], message=" "))
    assert codes(refused) == ["BAD_USER_INPUT"] and "must not be empty" in refused[0]["message"]
