"""`anode run` as a user runs it: a real process, a real Pyodide runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ANODE = [sys.executable, "-m", "anode_ext"]


def write_nb(folder: Path, *sources: str, markdown: str | None = None) -> Path:
    nb = new_notebook()
    if markdown is not None:
        nb.cells.append(new_markdown_cell(markdown))
    nb.cells += [new_code_cell(s) for s in sources]
    path = folder / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def anode(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ANODE, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def outputs(path: Path) -> list[list[dict]]:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return [c.get("outputs", []) for c in nb.cells if c.cell_type == "code"]


def test_runs_every_code_cell_and_keeps_the_log(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("from the notebook's folder")
    src = write_nb(
        tmp_path,
        "print('hi')\nopen('data.txt').read()",
        "from IPython.display import HTML\nHTML('<b>x</b>')",
        "with open('made.txt', 'w') as f: f.write('written by the cell')",
        markdown="# title",
    )
    store = tmp_path / "nb.anode"
    res = anode("run", src, "-o", tmp_path / "out.ipynb", "--store", store)
    assert res.returncode == 0, res.stderr
    outs = outputs(tmp_path / "out.ipynb")
    assert outs[0][0] == {"output_type": "stream", "name": "stdout", "text": "hi\n"}
    assert outs[0][1]["data"]["text/plain"] == '"from the notebook\'s folder"'
    assert outs[1][0]["data"]["text/html"] == "<b>x</b>"
    assert (tmp_path / "made.txt").read_text() == "written by the cell"
    log = anode("log", store, "--json")
    names = [json.loads(line)["name"] for line in log.stdout.splitlines()]
    assert names.count("v1.ExecutionCompleted") == 3
    assert names[-1] == "v1.RuntimeSessionEnded"
    assert outputs(src) == [[], [], []]  # -o given: the source is left alone


def test_a_cell_error_stops_the_run_unless_allowed(tmp_path: Path) -> None:
    src = write_nb(tmp_path, "1 / 0", "'after'")
    res = anode("run", src, "-o", tmp_path / "out.ipynb")
    assert res.returncode == 1
    assert "cell 1: ZeroDivisionError: division by zero" in res.stderr
    assert "Traceback" not in res.stderr
    outs = outputs(tmp_path / "out.ipynb")
    assert outs[0][0]["ename"] == "ZeroDivisionError" and outs[1] == []

    res = anode("run", src, "--allow-errors")  # in place
    assert res.returncode == 0, res.stderr
    outs = outputs(src)
    assert outs[1][0]["data"]["text/plain"] == "'after'"


def test_timeout_interrupts_the_cell_and_input_fails_instead_of_hanging(tmp_path: Path) -> None:
    src = write_nb(tmp_path, "while True: pass", "input('name? ')", "'end'")
    res = anode("run", src, "--timeout", "3", "--allow-errors", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "cell 1: timed out after 3 s; KeyboardInterrupt" in res.stderr
    assert "cell 2: StdinNotImplementedError" in res.stderr
    outs = outputs(src)
    assert outs[0][-1]["ename"] == "KeyboardInterrupt"
    assert outs[1][-1]["output_type"] == "error"
    assert outs[2][0]["data"]["text/plain"] == "'end'"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.ipynb"], "missing.ipynb"),
        (["run", "nb.ipynb", "--timeout", "0"], "--timeout"),
        (["run", "bad.ipynb"], "bad.ipynb"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    write_nb(tmp_path, "1")
    (tmp_path / "bad.ipynb").write_text("{not json")
    res = subprocess.run([*ANODE, *args], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr
