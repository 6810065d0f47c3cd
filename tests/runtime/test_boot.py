"""Booting cold and from the snapshot, restart and close."""

from __future__ import annotations

import fcntl
import os
import time

import pytest

from anode_ext.runtime import HostDied, PyodideHost
from anode_ext.runtime.launch import LEGACY_AGE_S, LOCK_NAME, BootOptions, PipDir, plan
from anode_ext.runtime.node import find_node
from anode_ext.runtime.process import COMPILER_NICENESS

from .conftest import Boot, HostMaker, run

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_cold_boot_writes_a_snapshot(boot: Boot) -> None:
    assert not boot.cold.from_snapshot and boot.cold.snapshot == "created"
    assert boot.cold.python_version.startswith("3.")
    assert boot.cold.ipython_version.startswith("9.")
    assert boot.cold.network_isolated
    assert boot.cold.code_cache == "created"  # V8's code for pyodide.asm.js, in the file
    assert list(boot.cache.glob("snapshot-*.bin"))


async def test_snapshot_boot_is_faster_and_fresh(boot: Boot, make_host: HostMaker) -> None:
    a, b = await make_host(), await make_host()
    for h in (a, b):
        assert h.info is not None and h.info.from_snapshot and h.info.snapshot == "loaded"
        assert h.info.code_cache == "accepted"
        assert h.info.boot_seconds < boot.cold.boot_seconds
    # Restored from one image, they must not share random state.
    ra = (await run(a, "import random; random.random()")).result()
    rb = (await run(b, "import random; random.random()")).result()
    assert ra != rb
    assert (await run(a, "x = 1; x")).result() == "1"
    assert (await run(b, "'x' in dir()")).result() == "False"
    await a.close()
    await b.close()


async def test_a_snapshot_file_it_cannot_read_falls_back_to_a_cold_boot(
    boot: Boot, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A file that passes the size/mtime check but is not what the host wrote
    (here: its header) boots cold, says why, and is discarded."""
    cache = tmp_path_factory.mktemp("bad-snapshot")
    [good] = boot.cache.glob("snapshot-*.bin")
    bad = cache / good.name
    data = bytearray(good.read_bytes())
    data[0:4] = b"\0\0\0\0"
    bad.write_bytes(bytes(data))
    digest = good.with_suffix(".sha256").read_text().split()[0]
    st = bad.stat()
    bad.with_suffix(".sha256").write_text(f"{digest} {st.st_size} {st.st_mtime_ns}\n")
    h = PyodideHost(tmp_path_factory.mktemp("bad-snapshot-work"), snapshot_dir=cache)
    info = await h.start()
    try:
        assert not info.from_snapshot
        assert info.snapshot.startswith("fallback to cold boot (snapshot load failed")
        assert "not one this host wrote" in info.snapshot
        assert not bad.exists() and not bad.with_suffix(".sha256").exists()
        assert (await run(h, "6 * 7")).result() == "42"
    finally:
        await h.close()


async def test_a_code_cache_made_under_other_flags_is_refused_not_fatal(
    make_host: HostMaker,
) -> None:
    h = await make_host(node_args=("--no-flush-bytecode",))  # any flag V8 hashes
    assert h.info is not None and h.info.from_snapshot and h.info.code_cache == "rejected"
    assert (await run(h, "6 * 7")).result() == "42"
    await h.close()


def _threads(pid: int) -> dict[int, str]:
    names = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            names[int(tid)] = f.read().strip()
    return names


async def test_background_compiler_threads_are_niced(make_host: HostMaker) -> None:
    h = await make_host()
    assert h.pid is not None
    threads = _threads(h.pid)
    base = os.getpriority(os.PRIO_PROCESS, 0)
    compilers = [os.getpriority(os.PRIO_PROCESS, t) for t, n in threads.items() if n == "V8Worker"]
    python = [os.getpriority(os.PRIO_PROCESS, t) for t, n in threads.items() if n == "WorkerThread"]
    assert compilers and all(n >= max(base, COMPILER_NICENESS) for n in compilers), threads
    assert python == [base]  # the thread running the cells is not slowed
    assert (await run(h, "sum(range(10**5))")).result() == str(sum(range(10**5)))
    await h.close()


async def test_restart_gives_a_fresh_interpreter(make_host: HostMaker) -> None:
    h = await make_host()
    await run(h, "kept = 5")
    old_pid = h.pid
    info = await h.restart()
    assert h.pid != old_pid and info.from_snapshot
    r = await run(h, "kept")
    assert r.reply.error is not None and r.reply.error.ename == "NameError"
    assert r.reply.execution_count == 1
    await h.close()


async def test_close_leaves_no_process_and_fails_later_calls(make_host: HostMaker) -> None:
    h = await make_host()
    pid = h.pid
    assert pid is not None
    await h.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not h.alive
    with pytest.raises(HostDied):
        await h.execute("1")
    await h.close()  # twice is fine


async def test_missing_workdir_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError):
        await PyodideHost(tmp_path / "nope").start()


async def test_a_launch_is_taken_over_by_start(boot: Boot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """launch() spawns Node without an event loop; start() adopts it."""
    h = PyodideHost(tmp_path, snapshot_dir=boot.cache)
    h.launch()
    launched = h._launch
    assert launched is not None and launched.proc is not None
    info = await h.start()
    assert h.pid == launched.proc.pid and info.from_snapshot
    assert (await run(h, "6 * 7")).result() == "42"
    await h.close()
    with pytest.raises(ProcessLookupError):
        os.kill(launched.proc.pid, 0)


async def test_a_launch_with_other_options_is_discarded(boot: Boot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    launch = plan(BootOptions(tmp_path, find_node(None), boot.cache.resolve()))
    launch.spawn()
    assert launch.proc is not None
    other = PyodideHost(tmp_path, snapshot_dir=boot.cache, network=True)
    assert not other.adopt(launch)
    assert launch.proc.poll() is not None and not launch.pip.path.exists()
    # One that fits is taken; closing it before start() stops the process too.
    again = plan(BootOptions(tmp_path, find_node(None), boot.cache.resolve()))
    again.spawn()
    assert again.proc is not None
    same = PyodideHost(tmp_path, snapshot_dir=boot.cache)
    assert same.adopt(again)
    await same.close()
    assert again.proc.poll() is not None and not again.pip.path.exists()


async def test_pip_dirs_of_dead_owners_are_swept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "pip"
    live = PipDir.create(root)
    dead = PipDir.create(root)
    assert dead.lock_fd is not None
    os.close(dead.lock_fd)  # as when its process is killed: the lock goes with it
    legacy_old, legacy_new = root / "a", root / "b"
    for d in (legacy_old, legacy_new):
        d.mkdir()
    old = time.time() - LEGACY_AGE_S - 60
    os.utime(legacy_old, (old, old))
    (live.path / "req-1").mkdir()  # a download in progress
    newest = PipDir.create(root)  # sweeps
    left = sorted(p.name for p in root.iterdir())
    assert left == sorted([live.path.name, newest.path.name, "b"])
    assert (live.path / "req-1").is_dir()
    # While alive, a directory is locked against sweeps; removed, it is gone.
    with open(live.path / LOCK_NAME) as f, pytest.raises(BlockingIOError):
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    for d in (live, newest):
        d.remove()
    assert sorted(p.name for p in root.iterdir()) == ["b"]
