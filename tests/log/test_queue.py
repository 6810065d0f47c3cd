import pytest

from anode_ext.log import ADMIN, Identity, Refused

from .helpers import ALICE, BOB, RUNTIME, cell, e, log_bytes, run, start_session, stream

OTHER_RUNTIME = Identity("alice", "runtime-2")
SERVER = Identity("server", "server", frozenset({ADMIN}))


@pytest.fixture
def nb(store):
    store.push(
        [cell("c1", "print(1)"), cell("md", "text", position="W", cell_type="markdown")], ALICE
    )
    start_session(store)
    return store


def refused(store, events, who, status=409, match=None):
    before = log_bytes(store)
    with pytest.raises(Refused, match=match) as info:
        store.push(events, who)
    assert info.value.status == status
    assert log_bytes(store) == before
    return info.value


def state_of(store, ex):
    return store.state.t.executions[ex].state


def test_happy_path(nb):
    run(nb, "x1")
    nb.push([stream("x1", "1\n"), e("ExecutionCompleted", execution_id="x1", status="ok")], RUNTIME)
    ex = nb.state.t.executions["x1"]
    assert (ex.state, ex.status, ex.session_id, ex.execution_count) == ("completed", "ok", "s1", 1)
    assert ex.requested_at <= ex.started_at <= ex.ended_at
    assert nb.state.t.cells["c1"].execution_count == 1
    assert nb.state.t.runtimes["s1"].holding is None


def test_claims(nb):
    nb.push(
        [
            e("ExecutionRequested", execution_id="x1", cell_id="c1", code="1"),
            e("ExecutionRequested", execution_id="x2", cell_id="c1", code="2"),
        ],
        ALICE,
    )
    refused(
        nb,
        [e("ExecutionAssigned", execution_id="x2", session_id="s1")],
        RUNTIME,
        match="requested earlier",
    )
    refused(
        nb,
        [e("ExecutionAssigned", execution_id="x1", session_id="nope")],
        RUNTIME,
        match="not live",
    )
    refused(
        nb,
        [e("ExecutionAssigned", execution_id="x1", session_id="s1")],
        OTHER_RUNTIME,
        403,
        "another client",
    )
    nb.push([e("ExecutionAssigned", execution_id="x1", session_id="s1")], RUNTIME)
    refused(
        nb,
        [e("ExecutionAssigned", execution_id="x1", session_id="s1")],
        RUNTIME,
        match="only a pending one",
    )
    start_session(nb, "s2", OTHER_RUNTIME)
    refused(
        nb,
        [e("ExecutionAssigned", execution_id="x1", session_id="s2")],
        OTHER_RUNTIME,
        match="assigned",
    )
    refused(
        nb,
        [e("ExecutionAssigned", execution_id="x2", session_id="s1")],
        RUNTIME,
        match="already holds",
    )


def test_only_the_holder_starts_outputs_and_completes(nb):
    start_session(nb, "s2", OTHER_RUNTIME)
    nb.push([e("ExecutionRequested", execution_id="x1", cell_id="c1", code="1")], ALICE)
    nb.push([e("ExecutionAssigned", execution_id="x1", session_id="s1")], RUNTIME)
    refused(nb, [e("ExecutionStarted", execution_id="x1", execution_count=1)], OTHER_RUNTIME, 403)
    refused(nb, [e("ExecutionStarted", execution_id="x1", execution_count=1)], ALICE, 403)
    refused(nb, [stream("x1", "early")], RUNTIME, match="assigned, not executing")
    nb.push([e("ExecutionStarted", execution_id="x1", execution_count=1)], RUNTIME)
    refused(nb, [stream("x1", "forged")], OTHER_RUNTIME, 403)
    refused(nb, [e("ExecutionCompleted", execution_id="x1", status="ok")], BOB, 403)
    nb.push([e("ExecutionCompleted", execution_id="x1", status="ok")], RUNTIME)
    refused(
        nb, [e("ExecutionCompleted", execution_id="x1", status="ok")], RUNTIME, match="completed"
    )
    refused(nb, [stream("x1", "late")], RUNTIME, match="completed")
    refused(nb, [e("ExecutionFailed", execution_id="x1", reason="r")], RUNTIME, match="completed")


def test_reader_cannot_request(nb):
    reader = Identity("rita", "r", frozenset({"read", "write"}))
    refused(nb, [e("ExecutionRequested", execution_id="x", cell_id="c1", code="1")], reader, 403)


def test_requests_need_a_code_cell(nb):
    refused(
        nb,
        [e("ExecutionRequested", execution_id="x", cell_id="md", code="1")],
        ALICE,
        match="markdown",
    )
    refused(
        nb,
        [e("ExecutionRequested", execution_id="x", cell_id="gone", code="1")],
        ALICE,
        match="no cell",
    )
    nb.push([e("ExecutionRequested", execution_id="x", cell_id=None, code="1")], ALICE)
    refused(
        nb,
        [e("ExecutionRequested", execution_id="x", cell_id=None, code="1")],
        ALICE,
        match="exists",
    )


def test_cancel(nb):
    nb.push(
        [
            e("ExecutionRequested", execution_id="x1", cell_id="c1", code="1"),
            e("ExecutionRequested", execution_id="x2", cell_id="c1", code="2"),
        ],
        ALICE,
    )
    nb.push([e("ExecutionCancelled", execution_id="x1")], BOB)
    ex = nb.state.t.executions["x1"]
    assert (ex.state, ex.reason) == ("cancelled", "cancelled by bob")
    nb.push(
        [
            e("ExecutionAssigned", execution_id="x2", session_id="s1"),
            e("ExecutionStarted", execution_id="x2", execution_count=1),
        ],
        RUNTIME,
    )
    refused(nb, [e("ExecutionCancelled", execution_id="x2")], BOB, match="executing")
    refused(nb, [e("ExecutionCancelled", execution_id="x1")], BOB, match="cancelled")


def test_cancel_of_an_assigned_execution_frees_its_runtime(nb):
    """Claimed but not started: cancelling is still allowed (DESIGN's state machine),
    and the runtime holds nothing after it. Break caught: the rule refusing it."""
    nb.push([e("ExecutionRequested", execution_id="x1", cell_id="c1", code="1")], ALICE)
    nb.push([e("ExecutionAssigned", execution_id="x1", session_id="s1")], RUNTIME)
    assert nb.state.t.runtimes["s1"].holding == "x1"
    nb.push([e("ExecutionCancelled", execution_id="x1")], BOB)
    ex = nb.state.t.executions["x1"]
    assert (ex.state, ex.reason) == ("cancelled", "cancelled by bob")
    assert nb.state.t.runtimes["s1"].holding is None
    refused(nb, [e("ExecutionStarted", execution_id="x1", execution_count=1)], RUNTIME)


def test_runtime_lost_fails_the_running_and_requeues_the_assigned(nb):
    run(nb, "x1")
    nb.push([e("ExecutionRequested", execution_id="x2", cell_id="c1", code="2")], ALICE)
    refused(nb, [e("RuntimeSessionEnded", session_id="s1", reason="x")], BOB, 403)
    nb.push([e("RuntimeSessionEnded", session_id="s1", reason="node exited with signal 9")], SERVER)
    ex = nb.state.t.executions["x1"]
    assert ex.state == "failed"
    assert ex.reason == "runtime session ended: node exited with signal 9"
    assert nb.state.t.executions["x2"].state == "pending"
    refused(
        nb, [e("ExecutionAssigned", execution_id="x2", session_id="s1")], RUNTIME, match="not live"
    )
    start_session(nb, "s2", OTHER_RUNTIME)
    nb.push([e("ExecutionAssigned", execution_id="x2", session_id="s2")], OTHER_RUNTIME)
    nb.push([e("RuntimeSessionEnded", session_id="s2", reason="bye")], OTHER_RUNTIME)
    assert nb.state.t.executions["x2"].state == "pending"
    assert nb.state.first_pending() == "x2"


def test_server_fails_an_execution(nb):
    run(nb, "x1")
    refused(nb, [e("ExecutionFailed", execution_id="x1", reason="timeout")], BOB, 403)
    nb.push([e("ExecutionFailed", execution_id="x1", reason="missed heartbeats")], SERVER)
    assert nb.state.t.executions["x1"].reason == "missed heartbeats"
    assert nb.state.t.runtimes["s1"].holding is None


def test_aborted_without_start(nb):
    nb.push([e("ExecutionRequested", execution_id="x1", cell_id="c1", code="1")], ALICE)
    nb.push([e("ExecutionAssigned", execution_id="x1", session_id="s1")], RUNTIME)
    refused(
        nb, [e("ExecutionCompleted", execution_id="x1", status="ok")], RUNTIME, match="assigned"
    )
    nb.push([e("ExecutionCompleted", execution_id="x1", status="aborted")], RUNTIME)
    assert nb.state.t.executions["x1"].status == "aborted"


def test_input_pairs(nb):
    run(nb, "x1")
    refused(nb, [e("InputReplied", execution_id="x1", value="v")], BOB, match="not waiting")
    nb.push([e("InputRequested", execution_id="x1", prompt="name? ")], RUNTIME)
    refused(
        nb, [e("InputRequested", execution_id="x1", prompt="again")], RUNTIME, match="already waits"
    )
    reader = Identity("rita", "r", frozenset({"read"}))
    refused(nb, [e("InputReplied", execution_id="x1", value="v")], reader, 403)
    nb.push([e("InputReplied", execution_id="x1", value="Bob")], BOB)
    req = nb.state.t.inputs["x1"]
    assert (req.state, req.replied_by, req.value) == ("answered", "bob", "Bob")
    refused(nb, [e("InputReplied", execution_id="x1", value="again")], BOB, match="not waiting")


def test_interrupt_and_restart_requests(nb):
    refused(nb, [e("InterruptRequested", session_id="nope")], BOB, match="not live")
    nb.push([e("InterruptRequested", session_id="s1"), e("RestartRequested", session_id="s1")], BOB)
    rt = nb.state.t.runtimes["s1"]
    assert (rt.interrupts, rt.restart_requested) == (1, True)


def test_an_ended_execution_abandons_its_input_request(nb):
    run(nb, "x1")
    nb.push([e("InputRequested", execution_id="x1", prompt="name? ")], RUNTIME)
    nb.push([e("ExecutionCompleted", execution_id="x1", status="error")], RUNTIME)
    assert nb.state.t.inputs["x1"].state == "abandoned"
    refused(nb, [e("InputReplied", execution_id="x1", value="late")], BOB, match="not waiting")
