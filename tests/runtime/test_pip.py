"""%pip install: wheels fetched on the host, unpacked in the sandbox."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from anode_ext.runtime import PyodideHost

from .conftest import run

pytestmark = pytest.mark.asyncio(loop_scope="session")


def build_wheel(folder: Path, name: str, version: str, tag: str, body: str) -> Path:
    """A minimal wheel, written with zipfile (what `pip wheel` would make)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    wheel = folder / f"{name}-{version}-{tag}.whl"
    files = {
        f"{name}/__init__.py": body,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{p},,\n" for p in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel


@pytest.mark.slow
async def test_pip_install_a_local_pure_wheel(host: PyodideHost, tmp_path: Path) -> None:
    links = tmp_path / "links"
    build_wheel(
        links, "anode_tiny", "1.2.3", "py3-none-any", "def hello():\n    return 'hi from tiny'\n"
    )
    r = await run(host, f"%pip install --no-index --find-links {links} anode_tiny", timeout=120)
    assert r.reply.status == "ok", r.events
    assert "Successfully installed anode-tiny-1.2.3" in r.text(), r.text() + r.text("stderr")
    r = await run(
        host,
        "import anode_tiny, importlib.metadata as m\nanode_tiny.hello(), m.version('anode_tiny')",
    )
    assert r.result() == "('hi from tiny', '1.2.3')"


@pytest.mark.slow
async def test_pip_refuses_compiled_wheels(host: PyodideHost, tmp_path: Path) -> None:
    links = tmp_path / "links"
    build_wheel(links, "anode_native", "1.0", "cp313-cp313-manylinux_2_17_x86_64", "x = 1\n")
    r = await run(host, f"%pip install --no-index -f {links} anode_native", timeout=120)
    err = r.text("stderr")
    assert err.startswith("ERROR:") and (
        "not a pure-Python wheel" in err or "no pure-Python" in err
    ), err
    assert (await run(host, "import anode_native")).reply.error is not None


async def test_pip_rejects_paths_and_urls(host: PyodideHost) -> None:
    r = await run(host, "%pip install ./some/dir")
    assert "ERROR:" in r.text("stderr") and "not a package requirement" in r.text("stderr")
    r = await run(host, "%pip list")
    assert "Usage" in r.text("stderr")
