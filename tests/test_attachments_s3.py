"""Attachments in an S3-compatible store, shared by two instances: a real S3 server (moto's standalone server, in
a process of its own on loopback, talked to over HTTP), on SQLite and MariaDB."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import boto3
import httpx
import pytest

from tests.attachment_support import ATTACHMENT, HISTORY, RUN_WITH, download, png, upload, upload_errors
from tests.client import execute, operation, subscribe
from tests.conftest import RunningServer, free_port, make_token, two_instances_over_redis
from tests.matrix_support import codes


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
        return sorted(item["Key"] for item in listed.get("Contents", []))


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the S3 server did not start") from None
                time.sleep(0.1)
        yield S3Server(endpoint)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def two_instances(
    s3_server: S3Server, new_database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer, str]]:
    """Two servers with their own state folders, sharing the database, Redis and one bucket."""
    bucket = f"agql-{uuid.uuid4().hex[:8]}"
    shared = {
        "attachment_url_secret": "a shared secret for the links of both instances",
        "media_s3_bucket": bucket,
        "media_s3_endpoint": s3_server.endpoint,
        "media_s3_region": "us-east-1",
        "media_s3_access_key_id": "test",
        "media_s3_secret_access_key": "test",
    }
    with two_instances_over_redis(new_database_url("s3"), tmp_path_factory, "s3", **shared) as (a, b):
        yield a, b, bucket


async def test_an_upload_goes_to_the_bucket_and_another_instance_serves_it(
    two_instances: tuple[RunningServer, RunningServer, str], s3_server: S3Server, user_id: str
) -> None:
    a, b, bucket = two_instances
    token = make_token(user_id)
    content = png(12, 9)
    attachment = await upload(a, token, "shared.png", content)
    assert any(attachment["id"] in key and key.startswith("agno-graphql/media/") for key in s3_server.keys(bucket))
    assert not list(a.settings.media_path.glob("*")), "nothing goes to the local folder"
    on_b = (await execute(b, token, ATTACHMENT, {"id": attachment["id"]}))["attachment"]
    assert (on_b["width"], on_b["height"]) == (12, 9)
    response = await download(b, on_b["url"])
    assert response.status_code == 200 and response.content == content
    assert (await download(b, attachment["url"])).content == content  # a link made by the other instance


async def test_a_run_on_another_instance_sends_it_and_the_history_lists_it(
    two_instances: tuple[RunningServer, RunningServer, str], user_id: str
) -> None:
    a, b, _ = two_instances
    token = make_token(user_id)
    attachment = await upload(a, token, "report.txt", b"Findings\nall good\n")
    variables = {"input": {"agentId": "assistant", "message": "read it", "attachments": [attachment["id"]]}}
    events = [e["runAgent"] for e in await subscribe(b, token, RUN_WITH, variables)]
    assert events[-1]["__typename"] == "RunCompleted", events[-1]
    assert "report.txt (document, 18 bytes, first line: 'Findings'" in events[-1]["content"]
    messages = (await execute(a, token, HISTORY, {"id": events[0]["sessionId"]}))["session"]["messages"]["nodes"]
    listed = next(m for m in messages if m["role"] == "USER")["attachments"]
    assert [x["id"] for x in listed] == [attachment["id"]]
    assert (await download(a, listed[0]["url"])).content == b"Findings\nall good\n"


async def test_a_large_upload_goes_up_in_parts_and_comes_back_whole(
    two_instances: tuple[RunningServer, RunningServer, str], user_id: str
) -> None:
    a, b, _ = two_instances
    token = make_token(user_id)
    content = b"".join(b"line %08d\n" % n for n in range(1_100_000))
    assert len(content) > 8 * 1024 * 1024  # over one part: a multipart upload
    attachment = await upload(a, token, "big.txt", content)
    assert attachment["byteSize"] == len(content)
    response = await download(b, attachment["url"])
    assert response.status_code == 200 and response.content == content


async def test_deleting_the_session_deletes_the_object(
    two_instances: tuple[RunningServer, RunningServer, str], s3_server: S3Server, user_id: str
) -> None:
    a, b, bucket = two_instances
    token = make_token(user_id)
    attachment = await upload(a, token, "gone.png", png(2, 2))
    variables = {"input": {"agentId": "assistant", "message": "x", "attachments": [attachment["id"]]}}
    events = [e["runAgent"] for e in await subscribe(a, token, RUN_WITH, variables)]
    await execute(b, token, operation("DeleteSession"), {"input": {"sessionId": events[0]["sessionId"]}})
    assert not any(attachment["id"] in key for key in s3_server.keys(bucket))
    assert (await download(a, attachment["url"])).status_code == 404


async def test_a_refused_upload_leaves_nothing_in_the_bucket(
    two_instances: tuple[RunningServer, RunningServer, str], s3_server: S3Server, user_id: str
) -> None:
    a, _, bucket = two_instances
    before = s3_server.keys(bucket)
    errors = await upload_errors(a, make_token(user_id), "photo.png", b"not a picture")
    assert codes(errors) == ["BAD_USER_INPUT"]
    assert s3_server.keys(bucket) == before
