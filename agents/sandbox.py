"""Run untrusted (agent-generated) code under bubblewrap with hard resource limits.

Every call of :func:`sandbox_run` starts ``argv`` as::

    sh -c 'echo $$ > <cgroup>/cgroup.procs; exec "$@"'  (only when a pids cgroup is writable)
      prlimit --as --cpu --fsize --nofile --core --      (rlimits, inherited by everything below)
        bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --clearenv ...
          argv

No Python runs between ``fork`` and ``exec`` (no ``preexec_fn``), so this is safe to call from a
threaded worker.

What is isolated
----------------
* Network: ``--unshare-all`` gives the run an empty network namespace (only a downed loopback),
  so neither the host's services on 127.0.0.1 (PostgreSQL, Redis) nor the outside are reachable,
  and no DNS resolver is configured.
* File system: a fresh root that holds only ``/usr`` (with the merged-/usr symlinks ``/bin``,
  ``/lib``, ``/lib64``, ``/sbin``), a handful of ``/etc`` files the dynamic loader and Python need
  (no ``passwd``/``shadow``/``ssl`` keys, no ``resolv.conf``), the Python interpreter's prefix and
  the virtualenv (at ``/opt/venv``), all read-only; ``/proc`` of the run's own PID namespace, a
  minimal ``/dev``, a private tmpfs ``/tmp`` that disappears with the run, and ``run_dir`` bound
  writable at ``/work`` (the working directory). The project checkout, its ``.data`` directory,
  ``/root``, ``/home`` and the host's ``/tmp`` are not there at all.
* Identity: when the worker is root the code runs as uid/gid 65534 (nobody) inside a user
  namespace with every capability dropped, in a new session (no access to the worker's
  terminal) and new PID/IPC/UTS/cgroup namespaces.
* Environment: ``--clearenv``; only ``PATH``, ``HOME=/work``, ``LANG``,
  ``PYTHONDONTWRITEBYTECODE`` and the caller's ``env`` are set. Worker secrets never reach it.
* Resources (see :class:`SandboxLimits`): RLIMIT_AS (address space), RLIMIT_CPU (soft limit
  sends SIGXCPU, the hard limit one second later SIGKILL), RLIMIT_FSIZE, RLIMIT_NOFILE,
  RLIMIT_CORE=0; a wall clock that SIGKILLs the whole process group (bwrap dies, so its PID
  namespace's init dies and the kernel kills every process in the namespace); and a pids cap.
* Pids: RLIMIT_NPROC does *not* bound a fork bomb here: the user namespace maps uid 65534 back to
  host uid 0 (the worker's uid), so the count is root's whole process count and root is exempt
  anyway. What bounds it is the cgroup ``pids`` controller: a child cgroup per run with
  ``pids.max`` (cgroup v1 ``/sys/fs/cgroup/pids`` or v2 ``/sys/fs/cgroup`` when ``pids`` is in
  its ``cgroup.subtree_control``). When no writable pids cgroup exists a warning is logged once
  and the run has no pids cap (only the wall clock and CPU limit stop a fork bomb).

What is not isolated
--------------------
* The kernel is shared: a kernel exploit escapes. bwrap is a namespace sandbox, not a VM.
* Memory is bounded per process (RLIMIT_AS), not per run: up to ``pids`` processes may each use
  ``address_space_bytes``. No memory cgroup is used.
* CPU is bounded per process too; many processes can use many cores until the wall clock.
* Disk: RLIMIT_FSIZE bounds each file, not the number of files in ``run_dir``; ``/tmp`` is a
  tmpfs in RAM (bounded only by the per-file limit).
* Files the run leaves in ``run_dir`` belong to the worker's uid on the host (root when the
  worker is root: the user namespace maps uid 65534 back to it). Setuid/setgid bits are stripped
  after every run; symlinks in ``run_dir`` may point anywhere, so whoever reads results must not
  follow them, and ``run_dir`` should sit in a directory other host users cannot enter.
* ``/usr`` and the Python prefixes are readable: anything installed there (including the
  virtualenv's packages) is visible to the code.
* ``killed_reason`` for memory and file size is inferred (Python turns both into exceptions:
  ``MemoryError``, ``OSError: [Errno 27] File too large``); an exit status of 128+N is
  indistinguishable from death by signal N.

When bwrap is missing or cannot start a trivial program, :func:`sandbox_check` raises
:class:`SandboxUnavailable` (code ``sandbox_unavailable``); callers must refuse the run, never
run it unsandboxed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB
OUTPUT_MAX_BYTES = 64 * 1024
TRUNCATION_MARKER = b"\n[... output truncated by the sandbox ...]\n"
SANDBOX_UID = 65534
VENV_MOUNT = "/opt/venv"

# /etc files the dynamic loader, Python and common tools need; nothing with accounts or keys.
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/mime.types",
)
# Merged-/usr systems have these as symlinks into /usr; others as real directories.
ROOT_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

KilledReason = str  # None | "wall_clock" | "cpu_time" | "memory" | "file_size" | "pids" | "signal:<NAME>"


@dataclass(frozen=True)
class SandboxLimits:
    address_space_bytes: int = 1 * GiB
    cpu_seconds: int = 30
    file_size_bytes: int = 10 * MiB
    open_files: int = 256
    wall_seconds: float = 60
    pids: int = 64


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    duration_s: float
    killed_reason: KilledReason | None
    # Every limit the run ran into, in no particular order (killed_reason is the main one).
    limits_hit: tuple[str, ...] = ()
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    # The pids cgroup used, or None when the run had no pids cap.
    pids_cgroup: str | None = None
    # Paths in run_dir whose setuid/setgid bits were stripped after the run (see _clear_setid_bits).
    setid_bits_cleared: int = 0
    argv: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed_reason is None


class SandboxUnavailable(Exception):
    code = "sandbox_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Configuration


def _setting(name: str, default: object) -> object:
    try:
        from django.conf import settings

        return getattr(settings, name, default)
    except Exception:  # Django not configured: plain defaults
        return default


def default_bwrap_path() -> str | None:
    configured = _setting("SANDBOX_BWRAP", None)
    if configured:
        return str(configured)
    return shutil.which("bwrap")


def _python_prefixes() -> tuple[Path, Path | None]:
    """(interpreter prefix to bind at its own path, virtualenv to bind at /opt/venv or None)."""
    base = Path(sys.base_prefix).resolve()
    venv = Path(sys.prefix).resolve() if sys.prefix != sys.base_prefix else None
    return base, venv


# ---------------------------------------------------------------------------------------------
# pids cgroup

_cgroup_lock = threading.Lock()
_cgroup_root: Path | None = None
_cgroup_probed = False


def _probe_cgroup_root() -> Path | None:
    candidates = []
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").exists() and not (v1 / "cgroup.controllers").exists():
        candidates.append(v1)
    v2 = Path("/sys/fs/cgroup")
    with contextlib.suppress(OSError):
        if "pids" in (v2 / "cgroup.subtree_control").read_text().split():
            candidates.append(v2)
    for root in candidates:
        probe = root / f"leanvibe-sandbox-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir()
            try:
                (probe / "pids.max").write_text("8\n")
            finally:
                probe.rmdir()
        except OSError:
            continue
        return root
    return None


def pids_cgroup_root() -> Path | None:
    """The writable pids cgroup hierarchy, or None (a warning is logged once)."""
    global _cgroup_root, _cgroup_probed
    with _cgroup_lock:
        if not _cgroup_probed:
            _cgroup_root = _probe_cgroup_root()
            _cgroup_probed = True
            if _cgroup_root is None:
                logger.warning(
                    "sandbox: no writable cgroup with the pids controller; runs have no pids cap "
                    "(RLIMIT_NPROC does not bound root's children), only CPU and wall clock limits"
                )
        return _cgroup_root


class _PidsCgroup:
    def __init__(self, root: Path, limit: int) -> None:
        self.path = root / f"leanvibe-sandbox-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.path.mkdir()
        (self.path / "pids.max").write_text(f"{limit}\n")

    def hit_max(self) -> bool:
        with contextlib.suppress(OSError, ValueError):
            for line in (self.path / "pids.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "max" and int(value) > 0:
                    return True
        return False

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill_all_and_remove(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            try:
                self.path.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    logger.error("sandbox: could not remove %s (pids %s)", self.path, pids)
                    return
                time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# Command line


def build_bwrap_argv(
    bwrap: str, argv: list[str], *, run_dir: Path, env: dict[str, str] | None = None
) -> list[str]:
    base_prefix, venv = _python_prefixes()
    cmd = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if os.geteuid() == 0:
        cmd += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    cmd += ["--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]
    for name in ROOT_DIRS:
        if os.path.islink(name):
            cmd += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            cmd += ["--ro-bind", name, name]
    for name in ETC_FILES:
        if os.path.exists(name):
            cmd += ["--ro-bind", name, name]
    if not str(base_prefix).startswith("/usr/"):
        cmd += ["--ro-bind", str(base_prefix), str(base_prefix)]
    path = "/usr/local/bin:/usr/bin:/bin"
    if venv is not None:
        cmd += ["--ro-bind", str(venv), VENV_MOUNT]
        path = f"{VENV_MOUNT}/bin:{path}"
    elif not str(base_prefix).startswith("/usr"):
        path = f"{base_prefix}/bin:{path}"
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108 - a private tmpfs
    cmd += ["--bind", str(run_dir.resolve()), "/work", "--chdir", "/work"]
    # The root bwrap builds is a tmpfs owned by the sandbox user: make it read-only too, so only
    # /work and /tmp are writable.
    cmd += ["--remount-ro", "/"]
    full_env = {
        "PATH": path,
        "HOME": "/work",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    cmd.append("--clearenv")
    for key, value in full_env.items():
        cmd += ["--setenv", key, value]
    cmd.append("--")
    cmd += argv
    return cmd


def _prlimit_argv(limits: SandboxLimits) -> list[str]:
    prlimit = shutil.which("prlimit") or "/usr/bin/prlimit"
    return [
        prlimit,
        f"--as={limits.address_space_bytes}",
        # SIGXCPU at the soft limit, SIGKILL one second later.
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
        f"--fsize={limits.file_size_bytes}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
    ]


# ---------------------------------------------------------------------------------------------
# Availability

_available_lock = threading.Lock()
_available: set[str] = set()


def sandbox_check(bwrap: str | None = None) -> None:
    """Raise SandboxUnavailable unless bwrap exists and runs a trivial program in the sandbox.

    A positive result is cached per process and bwrap path.
    """
    path = bwrap if bwrap is not None else default_bwrap_path()
    if not path:
        raise SandboxUnavailable("bwrap not found on PATH (apt-get install bubblewrap)")
    with _available_lock:
        if path in _available:
            return
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise SandboxUnavailable(f"bwrap not found or not executable: {path}")
    if shutil.which("prlimit") is None:
        raise SandboxUnavailable("prlimit (util-linux) not found")
    with tempfile.TemporaryDirectory(prefix="sandbox-check-") as tmp:
        try:
            result = _run(
                ["/bin/sh", "-c", "echo sandbox-ok"],
                bwrap=path,
                run_dir=Path(tmp),
                limits=SandboxLimits(wall_seconds=15),
                env=None,
                stdin=None,
            )
        except OSError as exc:
            raise SandboxUnavailable(f"bwrap could not be started: {exc}") from exc
    if result.exit_code != 0 or result.stdout.strip() != b"sandbox-ok":
        stderr = result.stderr.decode(errors="replace").strip()[:500]
        raise SandboxUnavailable(f"bwrap trivial run failed (exit {result.exit_code}): {stderr}")
    with _available_lock:
        _available.add(path)


# ---------------------------------------------------------------------------------------------
# Running


class _Reader(threading.Thread):
    """Keeps the first OUTPUT_MAX_BYTES of a pipe and drains (discards) the rest."""

    def __init__(self, pipe: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := self.pipe.read1(65536):  # type: ignore[attr-defined]
                room = OUTPUT_MAX_BYTES - self.size
                if room > 0:
                    self.chunks.append(chunk[:room])
                    self.size += min(room, len(chunk))
                if len(chunk) > room:
                    self.truncated = True

    def output(self) -> bytes:
        data = b"".join(self.chunks)
        return data + TRUNCATION_MARKER if self.truncated else data


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _classify(
    *,
    exit_code: int,
    stderr: bytes,
    wall_killed: bool,
    pids_hit: bool,
    duration: float,
    limits: SandboxLimits,
    run_dir: Path,
) -> tuple[str | None, tuple[str, ...]]:
    hits: list[str] = []
    # bwrap exits with 128+N when the sandboxed program died of signal N.
    signum = exit_code - 128 if 128 < exit_code < 128 + 65 else None
    tail = stderr[-4096:]
    if pids_hit:
        hits.append("pids")
    # SIGKILL not sent by our wall clock after at least the CPU limit in real time: the hard
    # RLIMIT_CPU (when the soft limit's SIGXCPU was caught or ignored).
    hard_cpu_kill = signum == signal.SIGKILL and not wall_killed and duration >= limits.cpu_seconds
    if signum == signal.SIGXCPU or hard_cpu_kill:
        hits.append("cpu_time")
    failed = exit_code != 0 or wall_killed
    # Python reports these as exceptions, not signals; only a failed run is blamed on them.
    if failed and (b"MemoryError" in tail or b"Cannot allocate memory" in tail or b"bad_alloc" in tail):
        hits.append("memory")
    if signum == signal.SIGXFSZ or (
        failed and (b"File too large" in tail or _file_at_limit(run_dir, limits))
    ):
        hits.append("file_size")
    if wall_killed:
        hits.append("wall_clock")
    if hits and failed:
        return hits[0], tuple(hits)
    if hits:  # e.g. a fork that hit pids.max, handled, and a clean exit
        return None, tuple(hits)
    if signum is not None:
        return f"signal:{_signal_name(signum)}", (f"signal:{_signal_name(signum)}",)
    return None, ()


def _file_at_limit(run_dir: Path, limits: SandboxLimits) -> bool:
    try:
        for dirpath, _dirs, files in os.walk(run_dir):
            for name in files:
                with contextlib.suppress(OSError):
                    if os.lstat(os.path.join(dirpath, name)).st_size >= limits.file_size_bytes:
                        return True
    except OSError:
        pass
    return False


def _clear_setid_bits(run_dir: Path) -> int:
    """Strip setuid/setgid bits from everything the run left in run_dir; returns how many.

    When the worker is root, the sandbox's uid 65534 is host root (the user namespace maps it to
    the caller), so ``chmod 4755`` inside would leave a setuid-root program on the host. Called
    after every process of the run is dead, so nothing can race it; symlinks are never followed.
    """
    cleared = 0
    for dirpath, dirnames, filenames in os.walk(run_dir):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
                if stat.S_ISLNK(mode) or not mode & (stat.S_ISUID | stat.S_ISGID):
                    continue
                os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID))
                cleared += 1
    with contextlib.suppress(OSError):
        mode = os.lstat(run_dir).st_mode
        if mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(run_dir, stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID))
            cleared += 1
    return cleared


def _run(
    argv: list[str],
    *,
    bwrap: str,
    run_dir: Path,
    limits: SandboxLimits,
    env: dict[str, str] | None,
    stdin: bytes | None,
) -> SandboxResult:
    cmd = _prlimit_argv(limits) + build_bwrap_argv(bwrap, argv, run_dir=run_dir, env=env)
    cgroup_root = pids_cgroup_root()
    cgroup = _PidsCgroup(cgroup_root, limits.pids) if cgroup_root is not None else None
    if cgroup is not None:
        # The shell moves itself into the cgroup, then execs prlimit -> bwrap: everything the
        # run starts is in the cgroup from its first instruction.
        procs = str(cgroup.path / "cgroup.procs")
        cmd = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *cmd]

    with tempfile.TemporaryFile() as stdin_file:
        if stdin:
            stdin_file.write(stdin)
            stdin_file.seek(0)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv built above, no shell expansion of input
                cmd,
                stdin=stdin_file,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                process_group=0,
                close_fds=True,
            )
        except BaseException:
            if cgroup is not None:
                cgroup.kill_all_and_remove()
            raise
        if proc.stdout is None or proc.stderr is None:  # pragma: no cover - PIPE was asked for
            raise RuntimeError("sandbox: no output pipes")
        out, err = _Reader(proc.stdout), _Reader(proc.stderr)
        out.start()
        err.start()
        wall_killed = False
        try:
            proc.wait(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            wall_killed = True
        finally:
            # Always: kill the process group (bwrap; its PID namespace dies with it) and every
            # process left in the cgroup, so nothing outlives the run.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            pids_hit = cgroup.hit_max() if cgroup is not None else False
            if cgroup is not None:
                cgroup.kill_all_and_remove()
            proc.wait()
            duration = time.monotonic() - started
            out.join(timeout=5)
            err.join(timeout=5)
            proc.stdout.close()
            proc.stderr.close()
    setid_cleared = _clear_setid_bits(run_dir)
    if setid_cleared:
        logger.warning("sandbox: cleared setuid/setgid bits on %d paths in %s", setid_cleared, run_dir)
    exit_code = proc.returncode
    if exit_code < 0:  # prlimit/sh itself killed (our wall-clock SIGKILL)
        exit_code = 128 - exit_code
    stderr = err.output()
    reason, hits = _classify(
        exit_code=exit_code,
        stderr=stderr,
        wall_killed=wall_killed,
        pids_hit=pids_hit,
        duration=duration,
        limits=limits,
        run_dir=run_dir,
    )
    return SandboxResult(
        exit_code=exit_code,
        stdout=out.output(),
        stderr=stderr,
        duration_s=duration,
        killed_reason=reason,
        limits_hit=hits,
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        pids_cgroup=str(cgroup.path) if cgroup is not None else None,
        setid_bits_cleared=setid_cleared,
        argv=tuple(argv),
    )


def sandbox_run(
    argv: list[str],
    *,
    run_dir: Path,
    limits: SandboxLimits | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    bwrap: str | None = None,
) -> SandboxResult:
    """Run ``argv`` in the sandbox with ``run_dir`` as its writable ``/work``.

    Raises SandboxUnavailable (never runs unsandboxed) when bwrap is missing or broken.
    """
    path = bwrap if bwrap is not None else default_bwrap_path()
    if not path:
        raise SandboxUnavailable("bwrap not found on PATH (apt-get install bubblewrap)")
    sandbox_check(path)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run_dir does not exist: {run_dir}")
    return _run(
        argv,
        bwrap=path,
        run_dir=run_dir,
        limits=limits or SandboxLimits(),
        env=env,
        stdin=stdin,
    )
