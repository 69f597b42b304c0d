"""The pure rules of the client's output checks: event positions (SSE ids), gaps, long-line pieces."""

from __future__ import annotations

import pytest

from tensorlake_sandbox import OutputLostError
from tensorlake_sandbox._process_rules import Positions, Reassembly


def test_positions_take_new_lines_skip_replayed_ones_and_raise_on_a_jump() -> None:
    p = Positions("stdout of process 7")
    assert [p.take(str(i), i) for i in range(3)] == [True, True, True]
    assert p.take("1", 3) is False  # replayed after a reconnect
    assert p.take("3", 3) is True
    with pytest.raises(OutputLostError) as caught:
        p.take("9", 4)
    assert (caught.value.missing, caught.value.received, caught.value.stream) == (5, 4, "stdout")
    assert "5 lines were lost from the stdout of process 7" in str(caught.value)


def test_positions_without_ids_cannot_check_and_take_everything() -> None:
    p = Positions("output of the run")
    assert p.take("", 0) and p.take("", 1) and p.take("not-a-number", 2)


def test_a_gap_event_raises_unless_it_covers_only_lines_already_taken() -> None:
    p = Positions("stderr of process 1")
    for i in range(5):
        p.take(str(i), i)
    p.gap('{"missing": 3, "from": 0, "to": 3}', 5)  # an old gap, seen again on a replay
    with pytest.raises(OutputLostError) as caught:
        p.gap('{"missing": 4, "from": 5, "to": 9}', 5)
    assert caught.value.missing == 4
    with pytest.raises(OutputLostError) as unknown:
        p.gap("not json", 5)
    assert unknown.value.missing is None and "some lines were lost" in str(unknown.value)


def test_reassembly_joins_the_pieces_of_each_stream_in_order() -> None:
    r = Reassembly()
    assert r.line("stdout", "plain", False) == "plain"
    assert r.line("stdout", "ab", True) is None
    assert r.line("stderr", "err", False) == "err"  # another stream's line in between
    assert r.line("stdout", "cd", True) is None
    assert r.pending
    assert r.line("stdout", "ef", False) == "abcdef"
    assert not r.pending
