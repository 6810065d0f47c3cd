"""The `anode` command as a user runs it: a real process, stdout, stderr and exit codes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

DEMO = Path(__file__).parents[1] / "log" / "notebooks" / "demo.ipynb"


def anode(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "anode_ext", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_import_log_show_export(tmp_path):
    store = tmp_path / "demo.anode"
    r = anode("import", DEMO, "-o", store)
    assert r.returncode == 0, r.stderr
    log = anode("log", store, "--json")
    envs = [json.loads(line) for line in log.stdout.splitlines()]
    assert [x["seq"] for x in envs] == list(range(1, len(envs) + 1))
    assert set(envs[0]) == {"seq", "id", "name", "args", "client_id", "user", "at"}
    assert len(anode("log", store, "--after", 5, "--json").stdout.splitlines()) == len(envs) - 5
    human = anode("log", store).stdout
    assert "v1.CellCreated" in human
    state = json.loads(anode("show", store).stdout)
    assert state["head"] == len(envs) and len(state["cells"]) == 9
    early = json.loads(anode("show", store, "--at", 6).stdout)
    assert early["head"] == 6 and len(early["cells"]) == 2
    out = tmp_path / "out.ipynb"
    assert anode("export", store, "-o", out).returncode == 0
    nbformat.validate(nbformat.read(out, as_version=4))
    at = nbformat.reads(anode("export", store, "--at", 6).stdout, as_version=4)
    assert len(at.cells) == 2


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "ok.anode"
    assert anode("import", DEMO, "-o", path).returncode == 0
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["import", "missing.ipynb"],
        ["import", "junk.ipynb"],
        ["export", "missing.anode"],
        ["export", "junk.anode"],
        ["show", "ok.anode", "--at", "99"],
        ["log", "ok.anode", "--after", "-1"],
        ["show", "ok.anode", "--at", "x"],
        ["frobnicate"],
        ["import", "ok.ipynb", "-o", "ok.anode"],
        ["runtime", "--notebook", "n"],
        ["runtime", "--server", "ftp://example.org", "--notebook", "n"],
        ["runtime", "--server", "http://127.0.0.1:9", "--notebook", "n", "--workdir", "missing"],
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, imported, args):
    (tmp_path / "junk.ipynb").write_text("{not json")
    (tmp_path / "junk.anode").write_bytes(b"garbage" * 1000)
    (tmp_path / "ok.ipynb").write_text(DEMO.read_text())
    shutil.copy(imported, tmp_path / "ok.anode")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    r = anode(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("anode: ")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_schema_command():
    schema = json.loads(anode("schema").stdout)
    assert "v1.ExecutionRequested" in schema["events"]


def test_a_newer_nbformat_minor_imports_and_exports_as_it_was(tmp_path):
    """Issue 19: nbformat's test4plus.ipynb (4.99, fields and types of the future)."""
    src = Path(__file__).parents[1] / "log" / "notebooks" / "nbformat" / "test4plus.ipynb"
    r = anode("import", src, "-o", tmp_path / "plus.anode")
    assert r.returncode == 0, r.stderr
    out = anode("export", tmp_path / "plus.anode")
    assert out.returncode == 0, out.stderr
    want = nbformat.writes(nbformat.read(src, as_version=4))
    assert json.loads(out.stdout) == json.loads(want)


def test_the_console_script_is_the_same_command():
    """pyproject's `anode` script runs the same CLI as `python -m anode_ext`."""
    script = Path(sys.executable).parent / "anode"
    assert script.exists(), "the install did not make the `anode` script"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == anode("--help").stdout


@pytest.mark.parametrize("where", ["--prefix", "--user", "--sys-prefix"])
def test_the_kernel_spec_installs_where_asked(tmp_path, where):
    """`python -m anode_ext.kernel install` with each of its flags puts the spec
    (which names Anode's provisioner) where Jupyter looks for it."""
    import os

    env = {**os.environ, "JUPYTER_DATA_DIR": str(tmp_path / "user")}
    args = [sys.executable, "-m", "anode_ext.kernel", "install", where]
    if where == "--prefix":
        args.append(str(tmp_path / "prefix"))
    out = subprocess.run(args, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    expected = {
        "--prefix": tmp_path / "prefix" / "share" / "jupyter" / "kernels",
        "--user": tmp_path / "user" / "kernels",
        "--sys-prefix": Path(sys.prefix) / "share" / "jupyter" / "kernels",
    }[where] / "anode-pyodide"
    assert str(expected) in out.stdout
    spec = json.loads((expected / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "anode-provisioner"
    assert spec["argv"][1:3] == ["-m", "anode_ext.kernel"]
