"""``manage.py agents_build_tiny_model``: write the tiny test model (agents/inference/tiny_model.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from leanvibe import embedded

DEFAULT_FOLDER = Path("models") / "tiny-qwen2"


def default_path() -> Path:
    """``<LEANVIBE_DATA_DIR>/models/tiny-qwen2`` (``.data/models/tiny-qwen2`` by default). Read
    when called: ``.env`` may set the variable after ``leanvibe.embedded`` was imported."""
    return Path(os.environ.get("LEANVIBE_DATA_DIR", embedded.BASE_DIR / ".data")) / DEFAULT_FOLDER


class Command(BaseCommand):
    help = "Build the tiny byte-level qwen2 test model (random weights) that mlx-lm loads from a folder."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--path", type=Path, default=None, help=f"Folder to write (default: {default_path()})"
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the random weights (default: 0)")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        # Imported here: mlx and mlx-lm load only when the command runs, not when Django lists commands.
        from agents.inference.tiny_model import folder_size, tiny_model_build

        path: Path = options["path"] or default_path()
        tiny_model_build(path, seed=options["seed"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Tiny model (seed {options['seed']}) written to {path.resolve()}: "
                f"{folder_size(path) / 1024:.0f} KB in {time.perf_counter() - started:.1f} s"
                " (mlx imports included)."
            )
        )
