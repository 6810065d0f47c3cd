"""The `anode` command line (DESIGN.md, "CLI").

Bad input never shows a traceback: one line on stderr, exit status 2, and
nothing written (files are written to a temporary name, then renamed).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from .log import AnodeError, Identity, Store
from .log.view import schema_document, state_json


class UsageError(AnodeError):
    """A wrong argument: reported like any other bad input."""


def cli_identity() -> Identity:
    try:
        user = getpass.getuser()
    except Exception:
        user = "anonymous"
    return Identity(user, f"cli-{uuid.uuid4().hex[:12]}")


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, renamed into place at the end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp_path}{suffix}").unlink(missing_ok=True)


def import_notebook(src: Path, dest: Path) -> int:
    """Build a new store `dest` from the notebook `src`; returns the head."""
    from .log.ipynb import import_events, read_notebook  # nbformat is slow to import

    nb = read_notebook(src)
    if dest.exists():
        raise UsageError(f"{dest}: exists already; remove it or pick another -o")
    events = import_events(nb, title=src.stem)
    head = 0

    def write(tmp: Path) -> None:
        nonlocal head
        tmp.unlink()
        with Store.open(tmp, create=True) as store:
            store.append([(uuid.uuid4().hex, e) for e in events], cli_identity())
            head = store.head
            store.checkpoint_wal()

    _atomic_write(dest, write)
    return head


def _open(path: str) -> Store:
    return Store.open(path, readonly=True)


def _seq(store: Store, at: int | None) -> int:
    if at is None:
        return store.head
    if at < 0 or at > store.head:
        raise UsageError(f"--at {at}: the log has events 1..{store.head}")
    return at


def cmd_import(args: argparse.Namespace) -> int:
    src = Path(args.notebook)
    dest = Path(args.output) if args.output else src.with_suffix(".anode")
    head = import_notebook(src, dest)
    print(f"{dest}: {head} events")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .log.ipynb import export_text

    with _open(args.store) as store:
        state = store.state_at(_seq(store, args.at))
    text = export_text(state)
    if args.output:
        _atomic_write(Path(args.output), lambda p: _write_text(p, text))
    else:
        sys.stdout.write(text)
    return 0


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def cmd_log(args: argparse.Namespace) -> int:
    if args.after < 0:
        raise UsageError("--after must be >= 0")
    with _open(args.store) as store:
        for env in store.iter_events(args.after):
            if args.json:
                print(json.dumps(env.to_json(), separators=(",", ":")))
            else:
                summary = json.dumps(env.to_json()["args"], ensure_ascii=False)
                if len(summary) > 100:
                    summary = summary[:97] + "..."
                print(f"{env.seq:>6}  {env.name:<26} {env.user:<12} {summary}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _open(args.store) as store:
        state = store.state_at(_seq(store, args.at))
        print(json.dumps(state_json(state, Path(args.store).stem), indent=1, ensure_ascii=False))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(schema_document(), indent=1, sort_keys=True))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .log.ipynb import export_text, import_events, read_notebook
    from .runtime.run import CellResult, host_factory, run_store, temporary_store

    src = Path(args.notebook)
    out = Path(args.output) if args.output else src
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    nb = read_notebook(src)
    who = cli_identity()
    if args.store:
        store = Store.open(args.store, create=True)
    else:
        store, _ = temporary_store()
    with store:
        if store.head == 0:
            store.append([(uuid.uuid4().hex, e) for e in import_events(nb, src.stem)], who)

        def report(res: CellResult) -> None:
            if res.status != "ok":
                what = res.error or res.reason or res.state
                if res.timed_out:
                    what = f"{res.reason}; {res.error}" if res.error else str(res.reason)
                print(f"anode run: cell {res.index + 1}: {what}", file=sys.stderr)

        factory = host_factory(src.resolve().parent)
        try:
            result = asyncio.run(
                run_store(
                    store,
                    factory,
                    user=who,
                    timeout=args.timeout,
                    allow_errors=args.allow_errors,
                    on_cell=report,
                )
            )
        except (RuntimeError, OSError) as err:
            raise AnodeError(f"the runtime failed: {err}") from None
        text = export_text(store.state)
    _atomic_write(out, lambda p: _write_text(p, text))
    ran = len(result.cells)
    print(f"{out}: {ran} code cells run", file=sys.stderr)
    return 1 if result.failed is not None and not args.allow_errors else 0


def cmd_runtime(args: argparse.Namespace) -> int:
    from .runtime.remote import serve

    token = args.token or os.environ.get("ANODE_TOKEN") or os.environ.get("JUPYTER_TOKEN")
    workdir = Path(args.workdir).resolve()
    if not workdir.is_dir():
        raise UsageError(f"--workdir {args.workdir}: not a directory")
    try:
        sessions = asyncio.run(
            serve(args.server, args.notebook, token=token, workdir=workdir, network=args.network)
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"anode runtime: {len(sessions)} session(s) served", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(args)


def cmd_cluster(args: argparse.Namespace) -> int:
    from .cluster import main as cluster_main

    return cluster_main(args)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="anode", description="A Jupyter notebook as an event log.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("import", help="a store from a notebook")
    s.add_argument("notebook")
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("export", help="a notebook from a store, as of now or --at SEQ")
    s.add_argument("store")
    s.add_argument("-o", "--output")
    s.add_argument("--at", type=int)
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("log", help="the events of a store")
    s.add_argument("store")
    s.add_argument("--after", type=int, default=0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_log)

    s = sub.add_parser("show", help="the state as JSON, as of now or --at SEQ")
    s.add_argument("store")
    s.add_argument("--at", type=int)
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("run", help="execute every code cell on a Pyodide runtime")
    s.add_argument("notebook")
    s.add_argument("-o", "--output", help="where to write the result (default: in place)")
    s.add_argument("--store", help="keep the log in this store (created if missing)")
    s.add_argument("--timeout", type=float, help="seconds per cell before it is interrupted")
    s.add_argument("--allow-errors", action="store_true", help="go on after a failing cell")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("runtime", help="work a notebook's queue on a server, from here")
    s.add_argument("--server", required=True, help="the Jupyter server's URL")
    s.add_argument("--notebook", required=True, help="the notebook's id on that server")
    s.add_argument("--token", help="the server's token (default: $ANODE_TOKEN, $JUPYTER_TOKEN)")
    s.add_argument("--workdir", default=".", help="the directory the sandbox may use")
    s.add_argument("--network", action="store_true", help="let code reach the network")
    s.set_defaults(func=cmd_runtime)

    s = sub.add_parser("schema", help="the event catalogue as JSON Schema")
    s.set_defaults(func=cmd_schema)

    s = sub.add_parser("demo", help="what `make demo` runs")
    s.add_argument("--no-server", action="store_true", help="only import, print and export")
    s.add_argument("--port", type=int, default=8888, help="JupyterLab's port")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("cluster", help="what `make cluster` runs: replicas behind HAProxy")
    s.add_argument("--replicas", type=int, default=2, help="how many JupyterLab servers")
    s.add_argument("--port", type=int, default=0, help="HAProxy's port (default: a free one)")
    s.set_defaults(func=cmd_cluster)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code: int = args.func(args)
        return code
    except BrokenPipeError:
        return 0
    except (AnodeError, OSError) as err:
        print(f"anode: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
