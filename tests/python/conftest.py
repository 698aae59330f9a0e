"""What the module's tests share: a log path in a temporary directory
(the log and the directory removed afterwards), and a small log."""
import os
import shutil
import tempfile

import pytest

import shmlog


@pytest.fixture
def path():
    d = tempfile.mkdtemp(prefix="shmlog-py-")
    p = os.path.join(d, "log")
    yield p
    try:
        shmlog.Log.delete(p)
    except shmlog.Error:
        pass
    shutil.rmtree(d, ignore_errors=True)


def small(path, **kw):
    return shmlog.Log.create(path, segment_size=64 * 1024, ring_segments=4, max_record_size=16 * 1024, **kw)
