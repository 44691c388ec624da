"""Request ids: random, unique, and never repeated by a forked server process."""

from __future__ import annotations

import os

from gateway.request_ids import _request_ids, valid_request_id


def test_ids_are_96_random_bits_and_do_not_repeat() -> None:
    ids = [_request_ids.new() for _ in range(5000)]  # several refills of the buffer
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 24 and valid_request_id(i) for i in ids)
    int(ids[0], 16)  # hex


def test_a_forked_child_does_not_reuse_the_parents_buffer() -> None:
    _request_ids.new()  # the buffer is filled before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next ids, leave without running anything else
        os.close(read)
        os.write(write, ",".join(_request_ids.new() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    os.waitpid(pid, 0)
    parent = [_request_ids.new() for _ in range(5)]
    assert len(child) == 5 and not set(child) & set(parent)
