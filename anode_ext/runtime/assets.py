"""The files the Node host needs: Pyodide, the pinned wheels, the snapshot.

Pyodide (npm) and the wheels are put next to this module at build time by
``hatch_build.py``; nothing is fetched at run time. The wheels are unpacked
once into the cache directory, which Pyodide mounts read-only, and memory
snapshots live there too, keyed by everything that goes into them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

RUNTIME_DIR = Path(__file__).resolve().parent
JS_DIR = RUNTIME_DIR / "js"
SHELL_DIR = RUNTIME_DIR / "pyodide_py"
HOST_SCRIPT = JS_DIR / "host.mjs"
PYODIDE_DIR = JS_DIR / "node_modules" / "pyodide"
WHEELS_DIR = JS_DIR / "wheels"
REQUIREMENTS = JS_DIR / "pyodide-requirements.txt"

_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)\s+--hash=sha256:([0-9a-f]{64})\s*$")


class AssetsMissing(RuntimeError):
    """The package was installed without its build step (npm ci, wheels)."""


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    sha256: str


def pins(requirements: Path = REQUIREMENTS) -> list[Pin]:
    out = []
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _PIN.match(line)
        if not m:
            raise ValueError(f"{requirements}: expected 'name==version --hash=sha256:…': {raw!r}")
        out.append(Pin(*m.groups()))
    return out


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_for(pin: Pin, wheels_dir: Path = WHEELS_DIR) -> Path | None:
    want = (_normalize(pin.name), pin.version)
    for path in sorted(wheels_dir.glob("*.whl")) if wheels_dir.is_dir() else ():
        name, version = path.name.split("-")[:2]
        if (_normalize(name), version) == want:
            return path
    return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pyodide_version() -> str:
    try:
        return str(json.loads((PYODIDE_DIR / "package.json").read_text())["version"])
    except FileNotFoundError:
        raise AssetsMissing(
            f"Pyodide is missing from {PYODIDE_DIR}; reinstall anode_ext "
            "(its build step runs `npm ci` in anode_ext/runtime/js)"
        ) from None


def check() -> list[Path]:
    """The pinned wheels, checked; raises AssetsMissing with what to do."""
    pyodide_version()
    found = []
    for pin in pins():
        path = wheel_for(pin)
        if path is None:
            raise AssetsMissing(
                f"wheel {pin.name}=={pin.version} is missing from {WHEELS_DIR}; "
                "reinstall anode_ext (its build step downloads the pinned wheels)"
            )
        found.append(path)
    return found


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "anode"


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:24]


def site_key() -> str:
    return _digest(REQUIREMENTS.read_bytes())


def snapshot_key() -> str:
    """Changes whenever anything that ends up in a snapshot changes."""
    parts = [pyodide_version().encode(), REQUIREMENTS.read_bytes()]
    parts += [(JS_DIR / "worker.mjs").read_bytes()]
    # Node's flags (node.py) end up in it too: V8 refuses a code cache made
    # under other flags.
    parts += [(RUNTIME_DIR / "node.py").read_bytes()]
    for path in sorted(SHELL_DIR.glob("*.py")):
        parts += [path.name.encode(), path.read_bytes()]
    return _digest(*parts)


def ensure_site(cache_dir: Path) -> Path:
    """The pinned wheels unpacked into ``cache_dir/site-KEY`` (once)."""
    target = cache_dir / f"site-{site_key()}"
    if (target / ".complete").is_file():
        return target
    wheels = check()
    by_name = {_normalize(p.name): p for p in pins()}
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".site-", dir=cache_dir))
    try:
        for wheel in wheels:
            pin = by_name[_normalize(wheel.name.split("-")[0])]
            if sha256_file(wheel) != pin.sha256:
                raise AssetsMissing(f"{wheel} does not match its pinned sha256; reinstall")
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(tmp)
        (tmp / ".complete").write_text("ok\n")
        try:
            tmp.rename(target)
        except OSError:
            if not (target / ".complete").is_file():  # not a concurrent winner
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# Snapshots: ``snapshot-KEY.bin`` and ``snapshot-KEY.sha256`` beside it. The
# Node process never writes them: it fills a temporary file handed to it as an
# open descriptor, and the host checks and renames it.


def snapshot_path(cache_dir: Path) -> Path:
    return cache_dir / f"snapshot-{snapshot_key()}.bin"


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".sha256")


def snapshot_valid(path: Path) -> bool:
    """The sidecar records the digest, size and mtime the host wrote; a size
    and mtime check is enough here (hashing 40 MB would cost a second per
    boot), and a snapshot that still fails to load falls back to a cold boot."""
    try:
        digest, size, mtime = _sidecar(path).read_text().split()
        st = path.stat()
    except (OSError, ValueError):
        return False
    return len(digest) == 64 and st.st_size == int(size) and st.st_mtime_ns == int(mtime)


def discard_snapshot(path: Path) -> None:
    for p in (path, _sidecar(path)):
        p.unlink(missing_ok=True)


def finalize_snapshot(tmp: Path, path: Path) -> None:
    """Move a freshly written snapshot in place; drop those of other keys."""
    digest = sha256_file(tmp)
    os.replace(tmp, path)
    st = path.stat()
    side_tmp = path.with_name(f".{path.name}.{os.getpid()}.sha256.tmp")
    side_tmp.write_text(f"{digest} {st.st_size} {st.st_mtime_ns}\n")
    os.replace(side_tmp, _sidecar(path))
    for old in path.parent.glob("snapshot-*.bin"):
        if old != path:
            discard_snapshot(old)
