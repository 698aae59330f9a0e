"""The module's calls that mirror the rest of the C++ API: the file sink,
transactions across logs, read_durable and a keeper thread, seek_time, log
and open options, and the producer's and consumer's other calls, each with
its failure paths (the exception and a message naming the problem)."""
import os
import time

import pytest

import shmlog
from conftest import small


def read_all(consumer, want=None, timeout=0.2):
    """Values polled until `want` came or a poll waited `timeout` seconds in vain."""
    got = []
    while want is None or len(got) < want:
        records = consumer.poll(256, timeout)
        if not records:
            break
        got += [bytes(r.value) for r in records]
    return got


def meta(path):
    with open(os.path.join(path, "shmlog.meta")) as f:
        return f.read()


# ----------------------------------------------------------------- file sink

def drain(log, sink, most=10**9):
    """Consumes group "sink" into `sink`, resuming where it says and
    checkpointing after each poll; returns how many records it wrote."""
    c = log.consumer(group="sink", mode="manual")
    at = sink.offset(0)
    if at is not None:
        c.seek(0, at)
    n = 0
    while n < most:
        records = c.poll(min(7, most - n), timeout=0.05)
        for r in records:
            sink.write(r.value)
            sink.write(b"\n")
        sink.advance(0, c.position(0))
        sink.checkpoint()
        c.commit()
        if not records:
            break
        n += len(records)
    c.close()
    return n


def test_file_sink_writes_each_record_once_across_restarts(path):
    log = small(path)
    p = log.producer()
    for i in range(100):
        p.append(b"%d" % i)
    out = os.path.join(os.path.dirname(path), "out.txt")
    with pytest.raises(ValueError, match="survives must be 'host-crash' or 'process-crash'"):
        shmlog.FileSink(out, log, survives="never")
    sink = shmlog.FileSink(out, log)
    assert sink.offset(0) is None
    with pytest.raises(ValueError, match="partition 3 is out of range"):
        sink.advance(3, 0)
    with pytest.raises(ValueError, match="partition 1 is out of range"):
        sink.offset(1)
    with pytest.raises(shmlog.Busy, match="out.txt"):
        shmlog.FileSink(out, log)  # one sink per file
    assert drain(log, sink, 40) == 40
    assert sink.file_length == 110 and sink.truncated_at_open == 0
    sink.close()
    with pytest.raises(shmlog.Closed):
        sink.checkpoint()
    # Output past the last checkpoint (a kill between the two) is cut at open.
    with open(out, "ab") as f:
        f.write(b"40\n41\n")
    with shmlog.FileSink(out, log, survives="process-crash") as sink:
        assert sink.truncated_at_open == 6 and sink.file_length == 110
        assert sink.offset(0) > 0
        assert drain(log, sink) == 60
    with open(out, "rb") as f:
        assert f.read() == b"".join(b"%d\n" % i for i in range(100))
    os.remove(out + ".offsets")
    with pytest.raises(ValueError, match="out.txt holds data but has no"):
        shmlog.FileSink(out, log)  # output without a journal


# ---------------------------------------------------- transactions across logs

def test_transactions_across_logs_commit_and_abort_together(path):
    a = small(path, partitions=2)
    b = small(path + "-b")
    try:
        pa = a.producer(producer_id="multi", transactional=True)
        pb = b.producer(producer_id="multi", transactional=True)
        plain = b.producer()
        ca = a.consumer(isolation="read_committed")
        cb = b.consumer(isolation="read_committed")
        pa.begin_transaction()
        pb.begin_transaction()
        pa.append(b"a1", partition=1)
        pb.append(b"b0")
        assert ca.poll(10) == [] and cb.poll(10) == []
        shmlog.commit_transactions([pa, pb])
        (ra,) = ca.poll(10, timeout=1.0)
        (rb,) = cb.poll(10, timeout=1.0)
        assert (bytes(ra.value), bytes(rb.value)) == (b"a1", b"b0")
        assert ra.transactional and rb.transactional
        pa.begin_transaction()
        pb.begin_transaction()
        pa.append(b"a-aborted")
        pb.append(b"b-aborted")
        shmlog.abort_transactions([pa, pb])
        assert not pa.in_transaction and not pb.in_transaction
        plain.append(b"after")
        assert read_all(ca, timeout=0.05) == [] and read_all(cb, want=1) == [b"after"]

        with pytest.raises(ValueError, match="same producer"):
            shmlog.commit_transactions([pa, pa])
        with pytest.raises(TypeError, match=r"producers\[1\] is None"):
            shmlog.commit_transactions([pa, None])
        with pytest.raises(ValueError, match="no producers"):
            shmlog.commit_transactions([])
        with pytest.raises(ValueError, match="no transaction is open"):
            shmlog.commit_transactions([pa, pb])
        pa.begin_transaction()
        with pytest.raises(ValueError, match="transactional"):
            shmlog.commit_transactions([pa, plain])
        pa.abort_transaction()
    finally:
        shmlog.Log.delete(path + "-b")


# ------------------------------------------------- durable reads, the keeper

def test_read_durable_waits_for_a_keeper(path):
    with pytest.raises(ValueError, match="read_durable needs a durable log"):
        small(path).consumer(read_durable=True)
    shmlog.Log.delete(path)
    small(path, durability="flush").close()
    with pytest.raises(ValueError, match="maker_patience must be between 0 and a year"):
        shmlog.Log.open(path, maker_patience=-1)
    log = shmlog.Log.open(path, keeper=False)  # nothing becomes durable until a keeper runs
    p = log.producer()
    durable = log.consumer(read_durable=True)
    plain = log.consumer()
    for i in range(3):
        p.append(b"r%d" % i)
    assert read_all(durable, timeout=0.05) == []
    assert read_all(plain, want=3) == [b"r0", b"r1", b"r2"]
    part = log.info()["partitions"][0]
    assert part["written_offset"] == 0 and part["counted"] and (part["appends"], part["bytes"]) == (3, 6)
    with log.start_keeper():
        assert read_all(durable, want=3, timeout=5.0) == [b"r0", b"r1", b"r2"]
        info = log.info()
        assert info["keeper_pid"] == os.getpid() and info["keeper_alive"]
        part = info["partitions"][0]
        assert part["durable_offset"] == part["end_offset"] == log.end_offset(0)
    keeper = log.start_keeper()
    keeper.stop()
    keeper.stop()  # once is enough


def test_a_keeper_needs_a_durable_log(path):
    with pytest.raises(ValueError, match="not durable"):
        small(path).start_keeper()


def test_seek_time_finds_the_first_record_at_or_after_a_time(path):
    log = small(path)
    p = log.producer()
    for i in range(3):
        p.append(b"r%d" % i)
        time.sleep(0.002)  # distinct timestamps
    c = log.consumer()
    records = c.poll(3)
    stamps = [r.timestamp_ns for r in records]
    offsets = [r.offset for r in records]
    assert c.seek_time(0, stamps[1]) == offsets[1]
    assert [bytes(r.value) for r in c.poll(3)] == [b"r1", b"r2"]
    assert c.seek_time(0, stamps[0] - 1) == offsets[0]
    assert c.seek_time(0, 2**64 - 1) == log.end_offset(0)
    with pytest.raises(ValueError, match="partition 5 is not assigned"):
        c.seek_time(5, 0)
    # append(timestamp_ns=...): the record keeps the time it is given.
    p.append(b"old", key=b"k", timestamp_ns=1234567)
    (old,) = c.poll(1)
    assert (bytes(old.value), old.timestamp_ns) == (b"old", 1234567)


# ------------------------------------------------------------- log options

def test_log_and_open_options_reach_the_log(path):
    memory = os.path.join(os.path.dirname(path), "memory")
    os.mkdir(memory)
    with pytest.raises(ValueError, match="claim_timeout must be between 0 and a year"):
        small(path, claim_timeout=-1)
    log = small(path, memory_dir=memory, durability="fsync", fsync_interval_bytes=1 << 20, fsync_interval=0.005,
                retention_bytes=1 << 30, retention_time=3600, token_window=8, token_window_time=60, max_producers=8,
                max_groups=4, max_members=2, claim_timeout=0.5, mode=0o640)
    text = meta(path)
    for line in ["fsync_interval_bytes=1048576", "fsync_interval_us=5000", "retention_bytes=1073741824",
                 "retention_ms=3600000", "token_window_ms=60000", "max_producers=8", "max_groups=4",
                 "max_members=2", "claim_timeout_ms=500", "memory_dir=" + memory]:
        assert line + "\n" in text
    info = log.info()
    assert info["memory_path"].startswith(memory + "/shmlog-")
    assert info["log_id"] == log.id and info["durability"] == "fsync" and info["pages"] == "normal"
    log.close()
    watcher = shmlog.Log.attach(path)
    assert watcher.partitions == 1
    with pytest.raises(shmlog.Error, match="read-only"):
        watcher.producer()


def test_groups_are_reset_and_deleted_once_nobody_reads_them(path):
    log = small(path)
    log.producer().append(b"x")
    with log.consumer(group="r") as c:
        assert read_all(c, want=1) == [b"x"]
    assert log.reset_group("r") == [0]
    with log.consumer(group="r") as c:
        assert read_all(c, want=1) == [b"x"]
    assert log.reset_group("r", "latest") == [log.end_offset(0)]
    assert log.reset_group("r", time_ns=0) == [0]
    assert log.reset_group("r", 0) == [0]
    with pytest.raises(ValueError, match="boundary"):
        log.reset_group("r", 3)
    with pytest.raises(ValueError, match="to must be 'earliest', 'latest' or an offset"):
        log.reset_group("r", "middle")
    with pytest.raises(TypeError, match="not both"):
        log.reset_group("r", "latest", time_ns=0)
    with pytest.raises(shmlog.NotFound):
        log.reset_group("nobody")
    member = log.consumer(group="g")
    with pytest.raises(shmlog.Busy, match="1"):
        log.reset_group("g")
    with pytest.raises(shmlog.Busy, match="1"):
        log.delete_group("g")
    log.delete_group("g", force=True)
    with pytest.raises(shmlog.NotFound):
        log.delete_group("g")
    log.sweep()
    member.close()


# ----------------------------------------------- producers' other calls

def test_producers_batches_claims_and_identity(path):
    log = small(path, partitions=2)
    with pytest.raises(ValueError, match="wait must be"):
        log.producer(wait="sometimes")
    with pytest.raises(ValueError, match="durable_timeout must be between 0 and a year"):
        log.producer(durable_timeout=-1.0)
    p = log.producer(wait="yield", timestamps=False, transaction_timeout=5.0, durable_timeout=0.1)
    assert p.append_batch([b"a", bytearray(b"b"), memoryview(b"c")]) == 3
    with pytest.raises(shmlog.TooLarge) as e:
        p.append_batch([b"d", bytes(16 * 1024 + 1), b"e"])
    assert e.value.appended == 1 and "appended 1 of 3" in str(e.value)
    with pytest.raises(ValueError, match="partition 7 is out of range \\(the log has 2\\)"):
        p.append(b"x", partition=7)
    hashed = p.partition_for(b"user-42")
    assert hashed in (0, 1)
    with p.claim(5, key_size=2, partition=1) as claim:
        claim.key[:] = b"k1"
        claim.value[:] = b"hello"
        assert claim.partition == 1
    with pytest.raises(ValueError, match="partition 2 is out of range"):
        p.claim(5, partition=2)
    (r,) = log.consumer(partitions=[1]).poll(10)
    assert (bytes(r.key), bytes(r.value), r.partition) == (b"k1", b"hello", 1)
    assert r.next_offset > r.offset and r.timestamp_ns == 0
    assert p.wait_durable(0, 1, timeout=0.01) is False  # no durability
    named = log.producer(producer_id="named")
    again = log.producer(producer_id="named")
    assert again.id == named.id and again.epoch == named.epoch + 1


def test_durable_appends_can_be_waited_for(path):
    log = small(path, durability="fsync")
    p = log.producer()
    offset = p.append(b"x")
    assert p.wait_durable(0, offset + 1, timeout=5.0) is True
    with pytest.raises(ValueError, match="partition 4 is out of range"):
        p.wait_durable(4, 1)


def test_transactions_commit_consumer_offsets(path):
    log = small(path)
    t = log.producer(producer_id="tx", transactional=True)
    with pytest.raises(shmlog.Error, match="no transaction is open"):
        t.add_offsets("g", 0, 5)
    assert not t.in_transaction
    t.begin_transaction()
    assert t.in_transaction
    t.add_offsets("g", 0, 5)
    t.add_offsets("g", 3, 7)
    t.commit_transaction()
    t.close()
    again = log.producer(producer_id="tx", transactional=True)
    assert sorted(again.committed_offsets("g")) == [(0, 5), (3, 7)]
    assert again.committed_offsets("other") == []


# ----------------------------------------------- consumers' other calls

def test_short_poll_backoff(path):
    log = small(path)
    p = log.producer()
    p.append(b"first")
    with pytest.raises(Exception, match="short_poll_backoff must not be negative"):
        log.consumer(short_poll_backoff=-1.0)
    # A poll that came back short makes the next wait the back-off (seconds)
    # first, counted from before the short poll.
    backing = log.consumer(short_poll_backoff=0.05)
    before = time.monotonic()
    assert [bytes(r.value) for r in backing.poll(256, 1.0)] == [b"first"]
    p.append(b"later")
    assert [bytes(r.value) for r in backing.poll(256, 1.0)] == [b"later"]
    assert time.monotonic() - before >= 0.05


def test_consumers_partitions_duplicates_and_offsets(path):
    log = small(path, partitions=2)
    p = log.producer()
    for seq, value in [(0, b"0"), (1, b"1"), (1, b"1-again"), (2, b"2")]:  # a retry of sequence 1
        p.next_sequence = seq
        p.append(value)
    p.append(b"other", partition=1)
    one = log.consumer(partitions=[1])
    assert one.assignment == [1]
    assert read_all(one, timeout=0.05) == [b"other"]
    assert read_all(log.consumer(partitions=[0], drop_duplicates=True), timeout=0.05) == [b"0", b"1", b"2"]
    with pytest.raises(ValueError, match="wait must be"):
        log.consumer(wait="never")
    g = log.consumer(group="g", mode="manual")
    records = g.poll(10)
    assert len(records) == 5 and records[0].producer_epoch == p.epoch
    g.commit(0, g.position(0))
    with pytest.raises(ValueError, match="beyond the position"):
        g.commit(0, g.position(0) + 64)
    with pytest.raises(ValueError, match="partition 5 is not assigned"):
        g.commit(5, 0)
    with pytest.raises(TypeError, match="both a partition and an offset"):
        g.commit(0)
