"""Install the `anode-pyodide` kernel spec (a wheel install ships it already)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

SPEC_DIR = Path(__file__).resolve().parent / "spec"


def install(*, user: bool = False, prefix: str | None = None) -> str:
    """Copy the spec where Jupyter looks; returns where it went."""
    return str(
        KernelSpecManager().install_kernel_spec(
            str(SPEC_DIR), "anode-pyodide", user=user, prefix=prefix
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m anode_ext.kernel install")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for this user")
    where.add_argument("--sys-prefix", action="store_true", help=f"into {sys.prefix}")
    where.add_argument("--prefix", help="under this prefix")
    args = p.parse_args(argv)
    prefix = sys.prefix if args.sys_prefix else args.prefix
    dest = install(user=args.user, prefix=prefix)
    print(f"installed the anode-pyodide kernel spec in {dest}")
    return 0
