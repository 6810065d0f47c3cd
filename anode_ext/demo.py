"""`make demo`: the sample notebook through the log and back out."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .cli import build_parser, import_notebook

SAMPLE = Path(__file__).parent / "examples" / "demo.ipynb"


def main(args: argparse.Namespace) -> int:
    out = Path(tempfile.mkdtemp(prefix="anode-demo-"))
    store = out / "demo.anode"
    head = import_notebook(SAMPLE, store)
    print(f"== imported {SAMPLE.name} into {store} ({head} events)")
    parser = build_parser()
    print("== anode log")
    log = parser.parse_args(["log", str(store)])
    log.func(log)
    exported = out / "demo.ipynb"
    export = parser.parse_args(["export", str(store), "-o", str(exported)])
    export.func(export)
    print(f"== exported to {exported}")
    return 0
