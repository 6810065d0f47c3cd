"""``%pip install``: the host downloads pure-Python wheels, we unpack them."""

from __future__ import annotations

import importlib
import io
import shlex
import sys
import sysconfig
import zipfile
from importlib import metadata

from IPython.core.magic import Magics, line_magic, magics_class

from . import bridge
from .streams import flush_all

USAGE = "Usage: %pip install [-U] [--pre] [--no-deps] [--no-index] [-f DIR] [-i URL] PACKAGE ..."


def _dist_name(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return name.replace("_", "-").lower(), version


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def install_wheel(filename: str, data: bytes) -> str:
    """Unpack one wheel into site-packages; returns what was done."""
    if not filename.endswith("-none-any.whl"):
        raise ValueError(f"{filename} is not a pure-Python wheel")
    name, version = _dist_name(filename)
    if _installed_version(name) == version:
        return f"Requirement already satisfied: {name}=={version}"
    target = sysconfig.get_paths()["purelib"]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in archive.namelist():
            if member.startswith("/") or ".." in member.split("/"):
                raise ValueError(f"{filename}: unsafe path {member!r}")
        archive.extractall(target)
    return f"Successfully installed {name}-{version}"


@magics_class
class PipMagics(Magics):
    @line_magic
    def pip(self, line: str) -> None:
        """Install pure-Python packages from the host's package index."""
        args = shlex.split(line)
        if not args or args[0] != "install" or len(args) < 2:
            print(USAGE, file=sys.stderr)
            return
        flush_all()
        ok, error, wheels = bridge.request_pip(args[1:])
        if not ok:
            print(f"ERROR: {error}", file=sys.stderr)
            return
        for filename, data in wheels:
            try:
                print(install_wheel(filename, data))
            except (ValueError, zipfile.BadZipFile, OSError) as exc:
                print(f"ERROR: {exc}", file=sys.stderr)
                return
        importlib.invalidate_caches()
        print("Note: you may need to restart the kernel to use updated packages.")
