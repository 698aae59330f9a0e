"""The Python module: round trips in one and two processes, zero copy,
the GIL released while waiting, bad input, and records exchanged with the
C++ `shmlog` command in both directions."""
import multiprocessing
import os
import subprocess
import threading
import time

import numpy
import pytest

import shmlog
from conftest import small

SHMLOG_CLI = os.environ.get("SHMLOG_CLI")


def test_round_trip_in_one_process(path):
    log = small(path, partitions=2)
    p = log.producer()
    assert p.append(b"one") == 0
    p.append(bytearray(b"two"))
    p.append(memoryview(b"three"), key=b"k", partition=1)
    c = log.consumer(group="g")
    got = sorted((r.partition, bytes(r.key), bytes(r.value)) for r in c.poll(10))
    assert got == [(0, b"", b"one"), (0, b"", b"two"), (1, b"k", b"three")]


def test_claim_writes_in_place_and_with_block_commits(path):
    log = small(path)
    p = log.producer()
    with p.claim(5) as claim:
        claim.value[:] = b"hello"
    aborted = p.claim(3)
    aborted.abort()
    c = log.consumer()
    assert [bytes(r.value) for r in c.poll(10)] == [b"hello"]
    with pytest.raises(shmlog.Error):
        claim.commit()  # already committed by the with block


def _produce(path, n):
    log = shmlog.Log.open(path)
    p = log.producer()
    for i in range(n):
        p.append(b"rec %d" % i)


def test_round_trip_across_two_python_processes(path):
    log = small(path)
    c = log.consumer(group="g", idle_timeout=5.0)
    child = multiprocessing.get_context("fork").Process(target=_produce, args=(path, 2000))
    child.start()
    got = [bytes(r.value) for _, r in zip(range(2000), c)]
    child.join(30)
    assert child.exitcode == 0
    assert got == [b"rec %d" % i for i in range(2000)]


def _poll_then_die(path, n):
    c = shmlog.Log.open(path).consumer(group="g")
    got = c.poll(n)
    os._exit(0 if len(got) == n else 1)  # no next poll, commit or close


def test_at_least_once_commits_a_poll_only_after_python_saw_it(path):
    log = small(path)
    p = log.producer()
    for i in range(5):
        p.append(b"r%d" % i)
    # A process that dies before its next poll, commit or close has not
    # committed what it was handed: the group gets those records again.
    child = multiprocessing.get_context("fork").Process(target=_poll_then_die, args=(path, 5))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    c = log.consumer(group="g")
    assert [bytes(r.value) for r in c.poll(10, timeout=2.0)] == [b"r%d" % i for i in range(5)]
    # The next poll commits them (their views released first), and close
    # commits the last poll's.
    assert c.poll(10) == []
    p.append(b"r5")
    assert [bytes(r.value) for r in c.poll(10, timeout=2.0)] == [b"r5"]
    c.close()
    again = log.consumer(group="g")
    assert again.poll(10, timeout=0.2) == []


def test_values_are_views_into_shared_memory(path):
    log = small(path)
    p = log.producer()
    payload = numpy.arange(1000, dtype=numpy.uint32).tobytes()
    first = p.append(payload)
    second = p.append(payload)
    c = log.consumer()
    r1, r2 = c.poll(2)
    a1 = numpy.frombuffer(r1.value, dtype=numpy.uint32)
    a2 = numpy.frombuffer(r2.value, dtype=numpy.uint32)
    assert (a1 == numpy.arange(1000)).all()
    # Two records' views lie exactly as far apart as their offsets: both
    # point into the ring itself, nothing was copied.
    addr1 = a1.__array_interface__["data"][0]
    addr2 = a2.__array_interface__["data"][0]
    assert addr2 - addr1 == second - first
    assert r1.value.readonly


def test_one_mebibyte_records_are_not_copied(path):
    log = shmlog.Log.create(path, segment_size=4 << 20, ring_segments=4, max_record_size=1 << 20)
    p = log.producer()
    offsets = [p.append(bytes(1 << 20)) for _ in range(2)]
    c = log.consumer()
    r1, r2 = c.poll(2)
    addr = [numpy.frombuffer(r.value, dtype=numpy.uint8).__array_interface__["data"][0] for r in (r1, r2)]
    assert addr[1] - addr[0] == offsets[1] - offsets[0]


def test_view_used_after_the_next_poll_is_a_clear_error(path):
    log = small(path)
    p = log.producer()
    p.append(b"a")
    c = log.consumer()
    (r,) = c.poll(1)
    c.poll(1)
    with pytest.raises(ValueError, match="released"):
        bytes(r.value)


def test_waiting_consumer_releases_the_gil(path):
    log = small(path)
    c = log.consumer()
    ticks = 0
    stop = False

    def count():
        nonlocal ticks
        while not stop:
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    assert c.poll(1, timeout=0.5) == []
    stop = True
    t.join()
    assert ticks > 50  # the other thread ran while poll waited


def test_bad_input_raises_clear_errors(path):
    log = small(path)
    p = log.producer()
    with pytest.raises(TypeError):
        p.append(12345)
    with pytest.raises(shmlog.TooLarge):
        p.append(bytes(16 * 1024 + 1))
    with pytest.raises(ValueError, match="partition"):
        p.append(b"x", partition=7)
    with pytest.raises(ValueError, match="mode"):
        log.consumer(mode="sometimes")
    with pytest.raises(shmlog.AlreadyExists):
        small(path)
    with pytest.raises(shmlog.NotFound, match="not a shmlog log"):
        shmlog.Log.open(os.path.dirname(path))
    log.close()
    with pytest.raises(shmlog.Closed):
        log.producer()
    p.close()
    with pytest.raises(shmlog.Closed):
        p.append(b"x")


@pytest.mark.skipif(not SHMLOG_CLI, reason="SHMLOG_CLI (the shmlog command) not given")
def test_exchange_with_a_cpp_process_both_ways(path):
    log = small(path)
    other = path + "-from-cpp"
    shmlog.Log.create(other)
    try:
        # Python -> C++
        p = log.producer()
        for i in range(500):
            p.append(b"py %d" % i)
        out = subprocess.run([SHMLOG_CLI, "consume", path, "--max", "500", "--idle-timeout-ms", "5000"],
                             capture_output=True, check=True, text=True).stdout
        assert out.splitlines() == ["py %d" % i for i in range(500)]
        # C++ -> Python
        lines = "".join("cpp %d\n" % i for i in range(500))
        subprocess.run([SHMLOG_CLI, "produce", other], input=lines, check=True, text=True)
        c = shmlog.Log.open(other).consumer(idle_timeout=5.0)
        got = [bytes(r.value).decode() for _, r in zip(range(500), c)]
        assert got == ["cpp %d" % i for i in range(500)]
    finally:
        shmlog.Log.delete(other)


def test_placement_options_reach_the_log(path):
    with pytest.raises(ValueError, match="pages must be normal, thp or huge"):
        shmlog.Log.create(path, segment_size=65536, ring_segments=2, max_record_size=1024, pages="gigantic")
    with pytest.raises(ValueError, match="NUMA node 4000 does not exist"):
        shmlog.Log.create(path, segment_size=65536, ring_segments=2, max_record_size=1024, numa_node=4000)
    log = shmlog.Log.create(path, segment_size=65536, ring_segments=2, max_record_size=1024, numa_node=0)
    with open(os.path.join(path, "shmlog.meta")) as meta:
        assert "numa_node=0\n" in meta.read()
    log.close()


def test_producer_ids_transactions_and_tokens(path):
    log = shmlog.Log.create(path, segment_size=65536, ring_segments=4, max_record_size=1024, token_window=16)
    with log.producer(producer_id="feed") as p:
        assert p.last_sequence is None
        p.append(b"a")
        p.append(b"b")
    p = log.producer(producer_id="feed")
    assert p.last_sequence == 1
    p.next_sequence = 0
    with pytest.raises(shmlog.Duplicate):
        p.append(b"a")  # a re-sent record: nothing written
    newer = log.producer(producer_id="feed")
    p.next_sequence = 5
    with pytest.raises(shmlog.Fenced):
        p.append(b"stale")
    newer.append_unique(b"tok", b"c")
    with pytest.raises(shmlog.Duplicate):
        newer.append_unique(b"tok", b"again")
    t = log.producer(producer_id="tx", transactional=True)
    t.begin_transaction()
    t.append(b"in txn")
    committed = log.consumer(isolation="read_committed")
    assert [bytes(r.value) for r in committed.poll(10)] == [b"a", b"b", b"c"]
    t.commit_transaction()
    assert [bytes(r.value) for r in committed.poll(10)] == [b"in txn"]
    with pytest.raises(ValueError, match="isolation"):
        log.consumer(isolation="serializable")


def test_durable_log_keeps_records_in_segment_files(path):
    with pytest.raises(ValueError, match="none, flush or fsync"):
        small(path, durability="sometimes")
    log = small(path, durability="fsync")
    with pytest.raises(ValueError, match="'memory' or 'durable'"):
        log.producer(acks="eventually")
    p = log.producer(acks="durable")
    for i in range(100):
        p.append(b"durable-%d" % i)
    segments = os.listdir(os.path.join(path, "partition-0"))
    assert "00000000000000000000.seg" in segments
    c = log.consumer()
    assert [bytes(r.value) for r in c.poll(200)] == [b"durable-%d" % i for i in range(100)]
    assert c.take_damage() == []


def test_a_reader_is_told_what_damage_it_stepped_over(path):
    log = small(path, durability="flush")
    p = log.producer()
    for i in range(2000):
        p.append(b"record-%05d" % i + b"x" * 100)
    p.close()
    log.close()
    first = os.path.join(path, "partition-0", "00000000000000000000.seg")
    os.remove(first)
    log = shmlog.Log.open(path)
    c = log.consumer()
    got = []
    while True:
        records = c.poll(512, 0.05)
        if not records:
            break
        got += [bytes(r.value) for r in records]
    assert 0 < len(got) < 2000
    damage = c.take_damage()
    assert len(damage) == 1
    partition, start, end, what = damage[0]
    assert (partition, start, end) == (0, 0, 64 * 1024)
    assert first in what and "No such file" in what
    assert c.take_damage() == []
