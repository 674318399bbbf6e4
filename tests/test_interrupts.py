"""Ctrl-C during a store call is held until the call returns (hpo.util.interrupts)."""

import os
import signal
import threading

import pytest

from hpo.util import interrupts


@pytest.fixture
def handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    interrupts.install()
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_a_signal_inside_a_store_call_waits_for_its_end(handlers):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.shielded():
            os.kill(os.getpid(), signal.SIGINT)
            with interrupts.shielded():  # nested calls: raised only when the outermost ends
                os.kill(os.getpid(), signal.SIGTERM)  # second signal: raised at once
            done.append("inner")
    assert done == []  # the second signal did not wait
    with pytest.raises(KeyboardInterrupt):
        with interrupts.shielded():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("finished")
    assert done == ["finished"]  # the first one did
    with pytest.raises(KeyboardInterrupt):  # outside a store call: at once
        os.kill(os.getpid(), signal.SIGINT)
    with interrupts.shielded():  # nothing held over from before
        done.append("clean")
    assert done == ["finished", "clean"]


def test_outside_a_store_call_and_in_other_threads_nothing_is_held(handlers):
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
    seen = []

    def other():
        with interrupts.shielded():
            seen.append(interrupts._state["depth"])

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == [0]  # only the main thread counts
