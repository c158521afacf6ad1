"""``manage.py backup s3://…`` / ``restore s3://…`` against a real S3 server on the loopback
(moto's server, in a thread, spoken to by the real boto3 over HTTP): the dump goes up in parts,
comes back and restores every row; a missing object or bucket is a clear error."""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from django.core.management import CommandError, call_command
from moto.server import ThreadedMotoServer

from leanvibe.platform import backups
from leanvibe.platform.targets import S3_PART_SIZE, TargetError, target_fetched, target_store
from leanvibe.tests.test_backups import KEY, _rows, _url, committed_tenant, restored  # noqa: F401

BUCKET = "lv-backups"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: str, settings, monkeypatch) -> Iterator[object]:
    """A fresh bucket on the local S3 server; the settings and credentials point at it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "leanvibe-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leanvibe-test-secret")
    settings.BACKUP_S3_ENDPOINT_URL = s3_server
    settings.BACKUP_S3_REGION = "us-east-1"
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="leanvibe-test",
        aws_secret_access_key="leanvibe-test-secret",
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
def test_backup_to_a_bucket_restores_every_row_from_it(committed_tenant, restored, s3, settings, encrypt):  # noqa: F811
    settings.BACKUP_ENCRYPTION_KEY = KEY
    out = io.StringIO()
    call_command("backup", f"s3://{BUCKET}/nightly/", *(["--encrypt"] if encrypt else []), stdout=out)
    [item] = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    key = item["Key"]
    assert key.startswith("nightly/leanvibe-") and key.endswith(".dump.enc" if encrypt else ".dump")
    assert f"s3://{BUCKET}/{key}" in out.getvalue() and item["Size"] > 0
    head = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read(len(backups.MAGIC))
    assert (head == backups.MAGIC) is encrypt

    call_command("restore", f"s3://{BUCKET}/{key}", "--database-url", _url(restored), stdout=io.StringIO())

    schemas = ["public", settings.TENANT_TEMPLATE_SCHEMA, committed_tenant.tenant.schema_name]
    original, copy = _rows(settings.DATABASES["default"], schemas), _rows(restored, schemas)
    assert original.keys() == copy.keys()
    for table in original:
        assert copy[table] == original[table], table


def test_a_named_key_is_used_as_given(committed_tenant, s3):  # noqa: F811
    call_command("backup", f"s3://{BUCKET}/db/latest.dump", stdout=io.StringIO())
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["db/latest.dump"]


def test_a_large_file_goes_up_in_parts_and_comes_back_whole(s3, tmp_path: Path):
    data = os.urandom(2 * S3_PART_SIZE + 12345)
    local = tmp_path / "big.dump"
    local.write_bytes(data)
    where = target_store(local, f"s3://{BUCKET}/parts/", default_name="big.dump")
    assert where == f"s3://{BUCKET}/parts/big.dump"
    # A multipart upload's ETag is the hash of the parts' hashes, followed by their number.
    assert s3.head_object(Bucket=BUCKET, Key="parts/big.dump")["ETag"].strip('"').endswith("-3")
    with target_fetched(where) as fetched:
        assert hashlib.sha256(fetched.read_bytes()).digest() == hashlib.sha256(data).digest()
        assert fetched.parent != tmp_path
    assert not fetched.exists()  # the downloaded copy is removed afterwards


def test_a_missing_object_or_bucket_is_a_clear_error(s3, db):
    with pytest.raises(CommandError, match="no backup file at s3://"):
        call_command("restore", f"s3://{BUCKET}/nothing.dump", "--database-url", "postgres://x/y")
    missing = "s3://not-a-bucket/x.dump"
    with pytest.raises(TargetError, match=re.escape(f"no object at {missing}")), target_fetched(missing):
        pass
    with pytest.raises(CommandError, match="s3://bucket/key"):
        call_command("restore", "s3:///x.dump", "--database-url", "postgres://x/y")
