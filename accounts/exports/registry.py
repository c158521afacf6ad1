"""The parts of a data export, registered by the apps that own the data.

accounts owns the export but knows only its own models (members, invitations, the audit log)
and the tenant's settings; agents adds projects, tasks and the workspace files, billing its
summary, from their ``AppConfig.ready()`` — the plug-in pattern of ``tenants.registry``, so
accounts imports neither. A part's ``write(tenant, archive)`` runs in the tenant's schema and
must write no secret (password hashes, token hashes, second-factor secrets, invitation
secrets, identity-provider keys): the export's test greps the whole archive for them.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder

if TYPE_CHECKING:
    from tenants.models import Tenant


class ExportArchive:
    """What a part writes into: a zip archive, with helpers for the usual shapes."""

    def __init__(self, zip_file: zipfile.ZipFile) -> None:
        self._zip = zip_file

    def json(self, name: str, value: Any) -> None:
        """``name`` (e.g. ``projects.json``): ``value`` as indented JSON (dates ISO 8601)."""
        text = json.dumps(value, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False, sort_keys=True)
        self._zip.writestr(name, text + "\n")

    def text(self, name: str, lines: Iterable[str]) -> None:
        """``name`` from a stream of text pieces (large files without holding them in memory)."""
        with self._zip.open(name, "w") as out:
            for piece in lines:
                out.write(piece.encode())

    def file(self, name: str, path: Path) -> None:
        self._zip.write(path, name)


@dataclass(frozen=True)
class ExportPart:
    """``name`` is shown as progress ("Writing projects…") and must be unique; parts run by
    ``order``."""

    name: str
    write: Callable[[Tenant, ExportArchive], None]
    order: int = 100


class ExportRegistryError(RuntimeError):
    pass


_parts: dict[str, ExportPart] = {}


def export_part_register(part: ExportPart) -> None:
    existing = _parts.get(part.name)
    if existing is not None and existing != part:
        raise ExportRegistryError(f"export part {part.name!r} is already registered")
    _parts[part.name] = part


def export_part_unregister(name: str) -> None:
    """Remove a part (tests)."""
    _parts.pop(name, None)


def export_parts() -> list[ExportPart]:
    return sorted(_parts.values(), key=lambda p: (p.order, p.name))
