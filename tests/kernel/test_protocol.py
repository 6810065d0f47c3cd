"""jupyter_kernel_test's conformance suite against the real anode-pyodide kernel.

One kernel serves the whole class (the harness's design); its first execution
waits for the Pyodide boot with a long timeout so that the harness's own
short timeouts measure the kernel, not the boot.
"""

from __future__ import annotations

import jupyter_kernel_test as jkt
from jupyter_client.manager import start_new_kernel


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
