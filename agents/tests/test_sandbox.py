"""The agent sandbox (agents/sandbox.py): abuse is stopped within its limit + 5 s, reason recorded.

Plain pytest, no database. The abuse tests need bubblewrap and are skipped without it; the
refusal test (bwrap missing -> SandboxUnavailable) runs everywhere.
"""

from __future__ import annotations

import ast
import os
import shutil
import socket
import stat
import textwrap
import uuid
from pathlib import Path

import pytest

from agents.sandbox import (
    TRUNCATION_MARKER,
    MiB,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
    pids_cgroup_root,
    sandbox_check,
    sandbox_run,
)

REPO = Path(__file__).resolve().parents[2]
GRACE_S = 5
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


def leftovers(marker: str) -> list[int]:
    """Host pids whose command line carries marker (sandboxed children inherit it over fork)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


def run_python(code: str, run_dir: Path, limits: SandboxLimits, marker: str | None = None) -> SandboxResult:
    marker = marker or f"sandbox-test-{uuid.uuid4().hex}"
    result = sandbox_run(["python", "-c", textwrap.dedent(code), marker], run_dir=run_dir, limits=limits)
    assert leftovers(marker) == [], "a sandboxed process outlived its run"
    if result.pids_cgroup:
        assert not Path(result.pids_cgroup).exists(), "the run's cgroup was not removed"
    return result


def test_missing_bwrap_is_refused_never_run_unsandboxed(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-bwrap")
    with pytest.raises(SandboxUnavailable) as excinfo:
        sandbox_check(missing)
    assert excinfo.value.code == "sandbox_unavailable"
    assert "no-such-bwrap" in excinfo.value.reason

    marker = tmp_path / "ran-unsandboxed"
    with pytest.raises(SandboxUnavailable):
        sandbox_run(["touch", str(marker)], run_dir=tmp_path, bwrap=missing)
    assert not marker.exists()


def test_broken_bwrap_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "bwrap"
    broken.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(SandboxUnavailable, match="Permission denied"):
        sandbox_check(str(broken))


@needs_bwrap
def test_network_is_unreachable(run_dir: Path) -> None:
    host_sees_redis = True
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        host_sees_redis = False

    result = run_python(
        """
        import socket
        for target in [("127.0.0.1", 6379), ("127.0.0.1", 5432)]:
            try:
                socket.create_connection(target, timeout=2).close()
                print("CONNECTED", target)
            except OSError as exc:
                print("refused", target, exc)
        try:
            socket.getaddrinfo("example.com", 443)
            print("RESOLVED")
        except OSError as exc:
            print("no dns", exc)
        print("interfaces", sorted(line.split(":")[0].strip()
              for line in open("/proc/net/dev").readlines()[2:]))
        """,
        run_dir,
        SandboxLimits(wall_seconds=10),
    )
    out = result.stdout.decode()
    assert result.exit_code == 0, result.stderr
    assert "CONNECTED" not in out and "RESOLVED" not in out
    assert [line.split(" (")[0] for line in out.splitlines()[:2]] == ["refused", "refused"]
    assert "no dns" in out
    assert "interfaces ['lo']" in out
    if host_sees_redis:  # the host reaches Redis, so the refusal inside is the sandbox's doing
        assert "6379" in out


@needs_bwrap
def test_project_checkout_data_dir_and_host_files_are_invisible(run_dir: Path, tmp_path: Path) -> None:
    host_secret = tmp_path / "host-secret.txt"
    host_secret.write_text("secret")
    paths = [
        REPO / "manage.py",
        REPO / ".data",
        REPO,
        Path("/work/main/manage.py"),
        Path("/work/main/.data"),
        Path("/root/.bash_history"),
        Path("/home"),
        Path("/etc/passwd"),
        Path("/etc/shadow"),
        host_secret,
    ]
    result = run_python(
        f"""
        import os
        for path in {[str(p) for p in paths]!r}:
            try:
                if os.path.isdir(path):
                    print("LISTED", path, os.listdir(path))
                else:
                    print("READ", path, open(path).read(20))
            except OSError as exc:
                print("hidden", path, type(exc).__name__)
        """,
        run_dir,
        SandboxLimits(wall_seconds=10),
    )
    out = result.stdout.decode()
    assert result.exit_code == 0, result.stderr
    assert "LISTED" not in out and "READ" not in out, out
    assert out.count("hidden") == len(paths)
    assert "manage.py" not in os.listdir(run_dir)


@needs_bwrap
def test_only_the_mount_points_exist_in_the_sandbox_root(run_dir: Path) -> None:
    result = run_python("import os; print(sorted(os.listdir('/')))", run_dir, SandboxLimits())
    assert result.exit_code == 0, result.stderr
    visible = set(ast.literal_eval(result.stdout.decode()))
    assert visible <= {
        "bin",
        "dev",
        "etc",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "opt",
        "proc",
        "root",
        "sbin",
        "tmp",
        "usr",
        "work",
        "home",
    }
    assert "farm" not in visible and "srv" not in visible and "var" not in visible


@needs_bwrap
def test_writes_outside_the_run_folder_fail_and_tmp_is_private(run_dir: Path) -> None:
    name = f"sandbox-escape-{uuid.uuid4().hex}"
    targets = [f"/usr/{name}", f"/etc/{name}", f"/opt/venv/{name}", f"/{name}", f"/proc/{name}"]
    result = run_python(
        f"""
        for path in {targets!r}:
            try:
                open(path, "w").write("x")
                print("WROTE", path)
            except OSError as exc:
                print("denied", path, type(exc).__name__)
        open("/tmp/{name}", "w").write("private")
        open("/work/{name}", "w").write("kept")
        print("tmp ok")
        """,
        run_dir,
        SandboxLimits(wall_seconds=10),
    )
    out = result.stdout.decode()
    assert result.exit_code == 0, result.stderr
    assert "WROTE" not in out and out.count("denied") == len(targets) and "tmp ok" in out
    for target in targets:
        assert not Path(target).exists()
    host_tmp = Path("/tmp")  # noqa: S108 - checking the host's /tmp is untouched
    assert not (host_tmp / name).exists(), "the sandbox's /tmp is the host's"
    assert (run_dir / name).read_text() == "kept"


@needs_bwrap
def test_setuid_files_made_inside_do_not_reach_the_host_setuid(run_dir: Path) -> None:
    result = sandbox_run(
        [
            "sh",
            "-c",
            "cp /usr/bin/id ./myid && chmod 4755 ./myid && mkdir d && chmod 2777 d "
            "&& touch d/f && chmod 6755 d/f && ln -s /usr/bin/passwd link",
        ],
        run_dir=run_dir,
        limits=SandboxLimits(wall_seconds=10),
    )
    assert result.exit_code == 0, result.stderr
    assert result.setid_bits_cleared == 3
    for path in (run_dir / "myid", run_dir / "d", run_dir / "d" / "f"):
        assert not path.lstat().st_mode & (stat.S_ISUID | stat.S_ISGID), path
    # the symlink's target (a real setuid program on the host) is left alone
    passwd = Path("/usr/bin/passwd")
    if passwd.exists():
        assert passwd.stat().st_mode & stat.S_ISUID


@needs_bwrap
def test_fork_bomb_is_stopped(run_dir: Path) -> None:
    limits = SandboxLimits(wall_seconds=4, pids=32, cpu_seconds=10)
    result = run_python(
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
        run_dir,
        limits,
    )
    assert result.duration_s < limits.wall_seconds + GRACE_S
    assert result.killed_reason is not None
    if pids_cgroup_root() is not None:
        assert result.killed_reason == "pids", result
        assert "wall_clock" in result.limits_hit
    else:
        assert result.killed_reason in {"wall_clock", "cpu_time"}


@needs_bwrap
def test_memory_hog_is_stopped(run_dir: Path) -> None:
    limits = SandboxLimits(address_space_bytes=256 * MiB, wall_seconds=10)
    result = run_python(
        """
        hog = bytearray(2 * 1024 ** 3)
        print("ALLOCATED")
        """,
        run_dir,
        limits,
    )
    assert result.duration_s < limits.wall_seconds + GRACE_S
    assert b"ALLOCATED" not in result.stdout
    assert result.exit_code != 0
    assert result.killed_reason == "memory", result


@needs_bwrap
def test_busy_loop_hits_the_cpu_limit(run_dir: Path) -> None:
    limits = SandboxLimits(cpu_seconds=2, wall_seconds=20)
    result = run_python("while True:\n    pass\n", run_dir, limits)
    assert result.duration_s < limits.cpu_seconds + GRACE_S
    assert result.killed_reason == "cpu_time", result


@needs_bwrap
def test_sleeping_loop_hits_the_wall_clock(run_dir: Path) -> None:
    limits = SandboxLimits(wall_seconds=3)
    result = run_python(
        """
        import os, time
        os.fork()  # a second process in the group, killed too
        while True:
            time.sleep(0.1)
        """,
        run_dir,
        limits,
    )
    assert limits.wall_seconds <= result.duration_s < limits.wall_seconds + GRACE_S
    assert result.killed_reason == "wall_clock", result


@needs_bwrap
def test_without_a_pids_cgroup_the_wall_clock_still_kills_every_process(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback path: no cgroup, so only the PID namespace's teardown reaps the children."""
    import agents.sandbox as sandbox

    monkeypatch.setattr(sandbox, "_cgroup_probed", True)
    monkeypatch.setattr(sandbox, "_cgroup_root", None)
    limits = SandboxLimits(wall_seconds=2)
    result = run_python(
        """
        import os, time
        for _ in range(5):
            if os.fork() == 0:
                os.setsid()  # leave the process group: only the namespace teardown gets it
                break
        while True:
            time.sleep(0.1)
        """,
        run_dir,
        limits,
    )
    assert result.pids_cgroup is None
    assert result.killed_reason == "wall_clock", result
    assert result.duration_s < limits.wall_seconds + GRACE_S


@needs_bwrap
def test_huge_file_hits_the_file_size_limit(run_dir: Path) -> None:
    limits = SandboxLimits(file_size_bytes=1 * MiB, wall_seconds=10)
    result = run_python(
        """
        with open("big.bin", "wb") as f:
            for _ in range(100):
                f.write(b"x" * 1024 * 1024)
        print("WROTE 100 MiB")
        """,
        run_dir,
        limits,
    )
    assert result.duration_s < limits.wall_seconds + GRACE_S
    assert b"WROTE" not in result.stdout
    assert result.killed_reason == "file_size", result
    assert (run_dir / "big.bin").stat().st_size <= 1 * MiB


@needs_bwrap
def test_output_is_truncated_and_host_environment_hidden(run_dir: Path) -> None:
    os.environ["LEANVIBE_SANDBOX_TEST_SECRET"] = "hunter2"
    try:
        result = run_python(
            """
            import os, sys
            print(sorted(os.environ))
            print(os.environ.get("LEANVIBE_SANDBOX_TEST_SECRET"), os.environ.get("DATABASE_URL"))
            sys.stdout.write("y" * 1_000_000)
            """,
            run_dir,
            SandboxLimits(wall_seconds=10),
        )
    finally:
        del os.environ["LEANVIBE_SANDBOX_TEST_SECRET"]
    assert result.exit_code == 0, result.stderr
    assert b"hunter2" not in result.stdout
    assert b"None None" in result.stdout
    assert result.stdout_truncated and result.stdout.endswith(TRUNCATION_MARKER)
    assert len(result.stdout) <= 64 * 1024 + len(TRUNCATION_MARKER)


@needs_bwrap
def test_pytest_on_a_generated_project_passes_inside(run_dir: Path) -> None:
    (run_dir / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (run_dir / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    result = sandbox_run(
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        run_dir=run_dir,
        limits=SandboxLimits(wall_seconds=30),
        stdin=b"",
    )
    assert result.ok, result.stdout + result.stderr
    assert b"1 passed" in result.stdout
