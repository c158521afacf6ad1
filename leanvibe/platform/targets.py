"""Where backups and tenant archives are written to and read from: a local path, or an
S3-compatible bucket (``s3://bucket/key``, or ``s3://bucket/prefix/`` to name the object).

S3 goes through django-storages' ``S3Storage`` (boto3): credentials from the environment as boto3
reads them (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, or an instance role), the endpoint
of an S3-compatible service from ``BACKUP_S3_ENDPOINT_URL`` and the region from
``BACKUP_S3_REGION``. A file is uploaded from disk in parts (multipart upload above
``S3_PART_SIZE``) and downloaded to disk in parts, so a dump is never held in memory.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files import File
from storages.backends.s3 import S3Storage

S3_SCHEME = "s3://"
#: Size of one part of a multipart upload or download (S3's smallest part is 5 MiB).
S3_PART_SIZE = 8 * 2**20


class TargetError(Exception):
    pass


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}"


def s3_location(target: str) -> S3Location | None:
    """``s3://bucket/key`` parsed; None for a local path."""
    if not target.startswith(S3_SCHEME):
        return None
    bucket, _, key = target[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise TargetError(f"{target!r}: an S3 target is s3://bucket/key or s3://bucket/prefix/")
    return S3Location(bucket, key)


def s3_storage(bucket: str) -> S3Storage:
    return S3Storage(
        bucket_name=bucket,
        endpoint_url=settings.BACKUP_S3_ENDPOINT_URL or None,
        region_name=settings.BACKUP_S3_REGION or None,
        file_overwrite=True,
        default_acl=None,
        location="",
        transfer_config=TransferConfig(multipart_threshold=S3_PART_SIZE, multipart_chunksize=S3_PART_SIZE),
    )


def _s3_error(location: S3Location, exc: Exception) -> TargetError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey"):
            return TargetError(f"no object at {location}")
        if code == "NoSuchBucket":
            return TargetError(f"no bucket {location.bucket!r}")
    return TargetError(f"S3 ({location}): {exc}")


def target_store(local: Path, target: str, *, default_name: str) -> str:
    """Put the finished file ``local`` where ``target`` says and return where it went: a folder
    (``default_name`` in it), a file, ``s3://bucket/prefix/`` (``default_name`` appended) or
    ``s3://bucket/key``."""
    location = s3_location(target)
    if location is None:
        path = Path(target)
        if path.is_dir():
            path = path / default_name
        if not path.parent.is_dir():
            raise TargetError(f"no folder {path.parent}")
        if path.resolve() != local.resolve():
            shutil.move(local, path)
        return str(path)
    if not location.key or location.key.endswith("/"):
        location = S3Location(location.bucket, location.key + default_name)
    storage = s3_storage(location.bucket)
    try:
        with local.open("rb") as handle:
            storage.save(location.key, File(handle, name=location.key))
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(location, exc) from exc
    return str(location)


def target_is_local(target: str) -> bool:
    return s3_location(target) is None


@contextmanager
def target_fetched(source: str) -> Iterator[Path]:
    """A local file with the contents of ``source`` (a path, or an S3 object downloaded to a
    temporary folder that is removed afterwards)."""
    location = s3_location(source)
    if location is None:
        path = Path(source)
        if not path.is_file():
            raise TargetError(f"no file at {path}")
        yield path
        return
    storage = s3_storage(location.bucket)
    with tempfile.TemporaryDirectory(prefix="leanvibe-fetch-") as tmp:
        local = Path(tmp) / (location.key.rsplit("/", 1)[-1] or "object")
        try:
            with local.open("wb") as handle:
                storage.bucket.download_fileobj(location.key, handle, Config=storage.transfer_config)
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error(location, exc) from exc
        yield local


def target_exists(target: str) -> bool:
    location = s3_location(target)
    if location is None:
        return Path(target).is_file()
    try:
        return bool(s3_storage(location.bucket).exists(location.key))
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(location, exc) from exc
