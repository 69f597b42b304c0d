"""The PTY websocket frames, the input checks and the incremental text reader (pure, no I/O)."""

from __future__ import annotations

import pytest

from tensorlake_sandbox._terminal_protocol import (
    MAX_INPUT_FRAME,
    check_open_args,
    check_size,
    exit_code_from_reason,
    exit_frame,
    exit_reason,
    input_frames,
    iter_text,
    parse_frame,
    resize_frame,
    resize_from_frame,
)
from tensorlake_sandbox.cli._shell import _Escape


def test_frames_match_the_official_sdks_test_vectors():
    assert resize_frame(rows=40, cols=120) == bytes.fromhex("0100780028")  # cols first on the wire
    assert input_frames("pwd\n") == [bytes.fromhex("007077640a")]
    assert parse_frame(bytes.fromhex("0300000007")) == ("exit", 7)
    assert parse_frame(bytes.fromhex("03ffffffff")) == ("exit", -1)
    assert parse_frame(b"\x00hi") == ("output", b"hi")


def test_the_servers_side_reads_and_writes_what_the_clients_side_does():
    # The local sandbox decodes resize frames and encodes exits with these (one wire, both ends).
    assert resize_from_frame(resize_frame(rows=40, cols=120)) == (40, 120)
    assert resize_from_frame(bytes.fromhex("0100780028")) == (40, 120)
    assert resize_from_frame(b"\x01\x00\x78\x00") is None  # short
    assert resize_from_frame(b"\x00\x00\x78\x00\x28") is None  # not a resize
    for code in (0, 7, 255, -1):
        assert parse_frame(exit_frame(code)) == ("exit", code)
        assert exit_code_from_reason(exit_reason(code)) == code
    assert exit_frame(7) == bytes.fromhex("0300000007")


def test_unknown_empty_and_short_frames_are_ignored():
    assert parse_frame(b"") is None
    assert parse_frame(b"\x07abc") is None
    assert parse_frame(b"\x03\x00") is None


def test_close_reason_carries_the_exit_code():
    assert exit_code_from_reason("exit:5") == 5
    assert exit_code_from_reason("exit:-1") == -1
    assert exit_code_from_reason("exit:x") == -1
    assert exit_code_from_reason("session terminated") is None
    assert exit_code_from_reason(None) is None


def test_long_input_is_split_into_frames_in_order():
    data = bytes(range(256)) * 500  # 128000 bytes
    frames = input_frames(data)
    assert all(f[0] == 0 and len(f) <= MAX_INPUT_FRAME + 1 for f in frames)
    assert b"".join(f[1:] for f in frames) == data
    assert input_frames(b"") == []
    assert input_frames(bytearray(b"ab")) == [b"\x00ab"]
    assert input_frames("é") == [b"\x00\xc3\xa9"]


def test_input_frames_stay_within_the_64_kib_the_server_accepts():
    # A literal, not MAX_INPUT_FRAME: the limit is the server's, whatever the constant says.
    frames = input_frames(b"x" * (300 * 1024))
    assert max(len(f) for f in frames) <= 64 * 1024


@pytest.mark.parametrize("bad", [None, 1.5, ["x"], 3])
def test_input_must_be_bytes_or_str(bad):
    with pytest.raises(TypeError, match="bytes or str"):
        input_frames(bad)


@pytest.mark.parametrize(
    ("rows", "cols", "error", "match"),
    [
        (0, 80, ValueError, "rows must be between 1 and 500"),
        (24, 1001, ValueError, "cols must be between 1 and 1000"),
        (True, 80, TypeError, "rows must be an int"),
        (24, "80", TypeError, "cols must be an int"),
        (24.0, 80, TypeError, "rows must be an int"),
    ],
)
def test_sizes_are_checked(rows, cols, error, match):
    with pytest.raises(error, match=match):
        check_size(rows, cols)


def test_size_limits_are_inclusive():
    assert check_size(1, 1) == (1, 1)
    assert check_size(500, 1000) == (500, 1000)


@pytest.mark.parametrize(
    ("command", "args", "env", "cwd", "match"),
    [
        ("", [], None, None, "command must not be empty"),
        (["sh"], [], None, None, "command must be a str"),
        ("sh", "-c echo", None, None, "args must be a list of strings"),
        ("sh", [1], None, None, "each of args must be a str"),
        ("sh", ["a\0b"], None, None, "NUL"),
        ("sh", [], {"A": 1}, None, "env\\['A'\\] must be a str"),
        ("sh", [], {"A=B": "1"}, None, "contain no '='"),
        ("sh", [], ["A=1"], None, "env must be a mapping"),
        ("sh", [], None, 5, "cwd must be a str or path"),
    ],
)
def test_open_arguments_are_checked_before_sending(command, args, env, cwd, match):
    with pytest.raises((TypeError, ValueError), match=match):
        check_open_args(command, args, env, cwd)


def test_utf8_split_across_chunks_is_decoded_whole():
    text = "héllo → 世界 🎉"
    data = text.encode()
    chunks = [data[i : i + 1] for i in range(len(data))]  # every character split
    assert "".join(iter_text(chunks)) == text
    assert "".join(iter_text([b"ok\xe4"])) == "ok\ufffd"  # a truncated tail is replaced at the end


def test_escape_sequence_detaches_and_passes_everything_else():
    esc = _Escape()
    assert esc.feed(b"ls\r") == (b"ls\r", False)
    assert esc.feed(b"ab\x1d") == (b"ab", False)  # pending across reads
    assert esc.feed(b"d") == (b"", True)
    esc = _Escape()
    assert esc.feed(b"\x1d\x1d") == (b"\x1d", False)  # a literal Ctrl-]
    assert esc.feed(b"\x1dx") == (b"\x1dx", False)
    assert esc.feed(b"\x03") == (b"\x03", False)  # Ctrl-C goes to the remote program
