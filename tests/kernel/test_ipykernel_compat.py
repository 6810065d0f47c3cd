"""The ipykernel internals the kernel uses are still where it expects them.

Fails when an ipykernel release moves, renames or reshapes one of them, or
when the installed ipykernel is below pyproject's floor. Every private name
is reached through ``anode_ext.kernel.ipykernel_internals``; the last test
keeps it that way.
"""

from __future__ import annotations

import inspect
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import ipykernel
import pytest
from ipykernel import _version as ipykernel_version
from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel
from jupyter_client.session import Session
from packaging.requirements import Requirement
from packaging.version import Version

from anode_ext.kernel import ipykernel_internals
from anode_ext.kernel.ipykernel_internals import InternalsKernel

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = Version(ipykernel.__version__)


def _params(func: Any) -> list[str]:
    return list(inspect.signature(func).parameters)


# -- the private names -----------------------------------------------------------


def test_shell_request_ident_is_where_this_version_keeps_it() -> None:
    k = InternalsKernel()
    if INSTALLED >= Version("7.1"):
        assert _params(Kernel._get_shell_context_var) == ["self", "var"]
    if INSTALLED >= Version("7"):
        assert isinstance(k._shell_parent_ident, ContextVar)
    else:
        assert k._parent_ident["shell"] == b""
    k.set_parent([b"client"], {"header": {}}, channel="shell")
    assert k.shell_request_ident() == [b"client"]


def test_iopub_topic() -> None:
    assert _params(Kernel._topic) == ["self", "topic"]
    k = InternalsKernel()
    assert k.iopub_topic("stream") == f"kernel.{k.ident}.stream".encode()


def test_the_sleep_before_each_execute_reply_is_off() -> None:
    assert Kernel.class_traits()["_execute_sleep"].default_value > 0
    assert InternalsKernel()._execute_sleep == 0


def test_abort_queues_takes_no_argument() -> None:
    inspect.signature(Kernel._abort_queues).bind(None)  # self only
    assert isinstance(Kernel.class_traits()["_aborting"].default_value, bool)


def test_execute_input_goes_through_the_overridden_method() -> None:
    assert _params(Kernel._publish_execute_input) == [
        "self",
        "code",
        "parent",
        "execution_count",
    ]
    # The base class must still publish through it, or turning it off does nothing.
    assert "self._publish_execute_input(" in inspect.getsource(Kernel.execute_request)

    sent: list[str] = []

    class Quiet(InternalsKernel):
        publishes_execute_input = False

    for cls, expected in [(InternalsKernel, ["execute_input"]), (Quiet, [])]:
        sent.clear()
        k = cls()
        k.session = Session()
        k.session.send = lambda _stream, msg_type, *a, **kw: sent.append(msg_type)
        k._publish_execute_input("1", {}, 1)
        assert sent == expected


def test_kernel_protocol_version() -> None:
    assert re.fullmatch(r"\d+\.\d+", ipykernel_version.kernel_protocol_version)
    assert ipykernel_internals.KERNEL_PROTOCOL_VERSION == ipykernel_version.kernel_protocol_version


# -- public names outside the wrapper-kernel documentation ------------------------


def test_the_undocumented_public_names() -> None:
    assert _params(Kernel.get_parent) == ["self", "channel"]
    assert _params(Kernel.pre_handler_hook) == _params(Kernel.post_handler_hook) == ["self"]
    dispatch = inspect.getsource(Kernel.dispatch_shell)
    assert "self.pre_handler_hook()" in dispatch and "self.post_handler_hook()" in dispatch
    assert isinstance(inspect.getattr_static(Kernel, "kernel_info"), property)
    assert inspect.iscoroutinefunction(Kernel.do_debug_request)
    assert _params(Kernel.do_debug_request) == ["self", "msg"]
    assert "stdin_socket" in Kernel.class_traits()
    assert "self.io_loop = " in inspect.getsource(Kernel.start)
    assert not inspect.iscoroutinefunction(Kernel.start)  # AnodeKernel.start calls it plainly
    assert IPKernelApp.class_traits()["outstream_class"].allow_none


@pytest.mark.skipif(INSTALLED < Version("7"), reason="ipykernel 6 has no subshell messages")
def test_create_subshell_request_is_a_control_handler() -> None:
    assert "create_subshell_request" in Kernel.control_msg_types
    assert inspect.iscoroutinefunction(Kernel.create_subshell_request)
    assert _params(Kernel.create_subshell_request) == ["self", "socket", "ident", "parent"]


def test_our_names_do_not_shadow_ipykernel() -> None:
    ours = {
        "publishes_execute_input",
        "shell_request_ident",
        "iopub_topic",
        "abort_queued_requests",
    }
    assert not {n for n in ours if hasattr(Kernel, n)}


# -- the floor and the one module ------------------------------------------------


def test_installed_ipykernel_meets_the_floor() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (req,) = (r for r in map(Requirement, project["dependencies"]) if r.name == "ipykernel")
    floors = {s.version for s in req.specifier if s.operator == ">="}
    assert floors == {ipykernel_internals.MIN_IPYKERNEL}
    assert req.specifier.contains(INSTALLED, prereleases=True), (INSTALLED, req)


def _ipykernel_private_names() -> set[str]:
    names = {n for n in dir(Kernel) if n.startswith("_") and not n.startswith("__")}
    for cls in Kernel.__mro__:
        names |= {n for n in getattr(cls, "__annotations__", {}) if n.startswith("_")}
    names |= {n for n in vars(InternalsKernel()) if n.startswith("_")}
    return {n for n in names if not n.startswith("__")}


def test_no_private_ipykernel_name_outside_the_compat_module() -> None:
    private = _ipykernel_private_names()
    found = []
    for path in sorted((ROOT / "anode_ext" / "kernel").glob("*.py")):
        if path.name == "ipykernel_internals.py":
            continue
        text = path.read_text()
        if re.search(r"\bipykernel\.\w*\._|\bipykernel\._", text):
            found.append(f"{path.name}: a private ipykernel module")
        used = re.findall(r"(?:\bself|\bsuper\(\)|\bdef)\s*\.?\s*(_\w+)", text)
        found += [f"{path.name}: {n}" for n in sorted(set(used) & private)]
    assert not found
