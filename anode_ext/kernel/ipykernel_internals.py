"""Every use of ipykernel's private interface, in one place.

The wrapper-kernel API (``do_*``, ``session``, ``iopub_socket``,
``execution_count``...) does not cover a few things ``AnodeKernel`` needs.
The rest of the kernel reaches them only through this module, and
``tests/kernel/test_ipykernel_compat.py`` fails when an ipykernel release
moves or renames one of them. Versions below were read from ipykernel's tags.

Private names:

- ``Kernel._get_shell_context_var`` (7.1+) on ``Kernel._shell_parent_ident``
  (a ContextVar since 7.0; 6.x has ``_parent_ident["shell"]``): the ZMQ
  identity of the shell request being handled. ``input_request`` on stdin
  must carry it to reach the client that sent the cell, as ipykernel's own
  ``_input_request`` does; ``get_parent()`` returns the message without it.
- ``Kernel._topic`` (all): the iopub topic ``kernel.<id>.<msg_type>``, so our
  iopub messages are addressed as ipykernel's own.
- ``Kernel._abort_queues`` (all; 7.0 added an optional ``subshell_id``):
  start aborting the queued requests before an error reply is sent.
- ``Kernel._publish_execute_input`` (all; overridden): off when the subclass
  publishes ``execute_input`` itself (from the log).
- ``Kernel._execute_sleep`` (all; a traitlet, 0.5 ms): ipykernel sleeps
  that long before every execute reply, so that its own stdout stream's
  last flush reaches clients first. No output here goes through that stream
  (``outstream_class`` is None; outputs are published on iopub before the
  reply), so the sleep is off: ~0.5-0.7 ms a cell (a profile of 200 cells).
- ``ipykernel._version.kernel_protocol_version`` (all): for ``kernel_info``
  (the package re-exports it, but not explicitly: mypy refuses it there).

Behaviour relied on: ipykernel 7.4+ dispatches a comm message that arrives
while another shell request is handled concurrently, without busy/idle and
without ``pre_handler_hook``; ``kernel/comms.py`` tells the two apart by the
request the hook last saw, and publishes the busy/idle ipywidgets waits for.

Public names outside the wrapper-kernel documentation, used directly but
checked by the same test: ``get_parent(channel)``, ``pre_handler_hook`` /
``post_handler_hook``, the ``kernel_info`` property, ``do_debug_request``,
``create_subshell_request`` (7.0+; before, an override nobody calls),
``io_loop``, ``stdin_socket`` and ``IPKernelApp.outstream_class`` (None
allowed).

The floor, ``MIN_IPYKERNEL`` (pyproject's ``ipykernel>=``, held equal by the
test): 6.29.3. Before it (ipykernel#1212), with ``stop_on_error_timeout`` 0,
the end of an abort is queued a loop turn late, so a request sent right after
an error reply may be aborted too, whoever started the abort
(``test_a_request_sent_after_an_error_reply_runs`` fails on 6.29.0 and
6.29.2). tests/kernel pass on 6.29.3, 6.29.5, 7.0.1 and 7.4.0; on 6.x but
for the subshell test: ipykernel 6 has no subshell messages to refuse.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, ClassVar

from ipykernel._version import kernel_protocol_version
from ipykernel.kernelbase import Kernel
from traitlets import Float

MIN_IPYKERNEL = "6.29.3"
KERNEL_PROTOCOL_VERSION: str = kernel_protocol_version


class InternalsKernel(Kernel):
    """ipykernel's ``Kernel`` with the private parts we use behind our own names."""

    _execute_sleep = Float(0.0).tag(config=True)

    publishes_execute_input: ClassVar[bool] = True
    """False: the base class does not publish ``execute_input`` (the subclass does)."""

    def _publish_execute_input(self, code: str, parent: Any, execution_count: int) -> None:
        if self.publishes_execute_input:
            super()._publish_execute_input(code, parent, execution_count)  # type: ignore[no-untyped-call]

    def shell_request_ident(self) -> Any:
        """The ZMQ identities of the shell request being handled (for stdin)."""
        var = getattr(self, "_shell_parent_ident", None)
        if isinstance(var, ContextVar):
            get = getattr(self, "_get_shell_context_var", None)
            # 7.1+ falls back on the shell's context outside it; in a handler
            # (where we ask), both read the request's own value.
            return get(var) if get is not None else var.get()
        return self._parent_ident["shell"]  # ipykernel 6

    def iopub_topic(self, msg_type: str) -> bytes:
        """The iopub topic ipykernel gives a message of this type."""
        topic: bytes = self._topic(msg_type)  # type: ignore[no-untyped-call]
        return topic

    def _publish(self, msg_type: str, content: dict[str, Any], parent: Any, **more: Any) -> None:
        """An iopub message as ipykernel addresses its own (`more`: buffers, metadata)."""
        assert self.session is not None
        self.session.send(
            self.iopub_socket,
            msg_type,
            content,
            parent=parent,
            ident=self.iopub_topic(msg_type),
            **more,
        )

    def abort_queued_requests(self) -> None:
        """Abort the shell requests queued now (what ``stop_on_error`` asks for)."""
        self._abort_queues()
