"""jupyter_kernel_test's conformance suite against the real anode-pyodide kernel.

One kernel serves the whole class (the harness's design); its first execution
waits for the Pyodide boot with a long timeout so that the harness's own
short timeouts measure the kernel, not the boot.
"""

from __future__ import annotations

import unittest
from typing import Any

import ipykernel
import jupyter_kernel_test as jkt
from jupyter_client.manager import start_new_kernel
from packaging.version import Version


class AnodePyodideKernelTests(jkt.KernelTests):
    kernel_name = "anode-pyodide"
    language_name = "python"
    file_extension = ".py"

    @classmethod
    def setUpClass(cls) -> None:
        cls.km, cls.kc = start_new_kernel(kernel_name=cls.kernel_name, startup_timeout=120)
        reply = cls.kc.execute_interactive("1", timeout=240)
        assert reply["content"]["status"] == "ok", reply

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {
            "text": "import collections.abc as cab; cab.Hash",
            "matches": {"Hashable"},
        },  # as ipykernel
    ]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2"]
    invalid_code_samples = ["import = 7q"]
    code_page_something = "print?"
    code_generate_error = "raise ValueError('a test error')"
    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n*n for n in range(1, 4)]", "result": "[1, 4, 9]"},
    ]
    code_display_data = [
        {
            "code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))",
            "mime": "text/html",
        },
        {
            "code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))",
            "mime": "text/latex",
        },
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "zip"
    code_clear_output = "from IPython.display import clear_output; clear_output()"

    # -- beyond the harness: the features this kernel does not have ----------------
    def _control(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        msg = self.kc.session.msg(msg_type, content)
        self.kc.control_channel.send(msg)
        reply = self.kc.get_control_msg(timeout=10)
        assert reply["parent_header"]["msg_id"] == msg["header"]["msg_id"]
        assert reply["msg_type"] == msg_type.replace("_request", "_reply")
        return dict(reply["content"])

    def test_kernel_info_offers_no_debugger_and_no_subshells(self) -> None:
        # ipykernel's kernel_info lists both whenever it can; front ends would offer them.
        self.kc.kernel_info()
        reply = self.kc.get_shell_msg(timeout=10)
        assert reply["content"]["supported_features"] == []

    def test_debug_request_gets_a_failed_response(self) -> None:
        request = {"type": "request", "seq": 7, "command": "initialize", "arguments": {}}
        content = self._control("debug_request", request)
        assert content["success"] is False
        assert content["request_seq"] == 7 and content["command"] == "initialize"
        assert "no debugger" in content["message"]

    @unittest.skipIf(
        Version(ipykernel.__version__) < Version("7"),
        "ipykernel 6 has no subshell messages (it does not answer them at all)",
    )
    def test_create_subshell_is_refused_and_the_kernel_goes_on(self) -> None:
        content = self._control("create_subshell_request", {})
        assert content["status"] == "error" and "no subshells" in content["evalue"]
        assert self._control("list_subshell_request", {})["subshell_id"] == []
        reply = self.kc.execute_interactive("6 * 7", timeout=60, output_hook=lambda m: None)
        assert reply["content"]["status"] == "ok"
