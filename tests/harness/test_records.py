"""Record files: whole-line appends, torn tails repaired, corruption named by file:line, one writer per shard."""
from __future__ import annotations

import math

import pytest

from harness.records import (
    RecordsCorruptError,
    RecordWriter,
    ShardBusyError,
    read_records_file,
    shard_filename,
    shard_files,
)


def test_append_and_read_roundtrip(tmp_path):
    p = tmp_path / shard_filename(0, 1)
    recs = [{"item_id": f"i{k}", "x": k / 3, "s": "é\nline"} for k in range(5)]
    with RecordWriter(p) as w:
        for r in recs:
            w.append(r)
    res = read_records_file(p)
    assert res.records == recs and not res.truncated_tail
    assert p.read_bytes().count(b"\n") == 5  # newlines inside values are escaped


def test_non_finite_values_survive(tmp_path):
    p = tmp_path / "shard-0-of-1.jsonl"
    with RecordWriter(p) as w:
        w.append({"item_id": "a", "psnr": float("inf")})
    assert math.isinf(read_records_file(p).records[0]["psnr"])


def test_truncated_tail_is_reported_then_repaired_by_writer(tmp_path):
    p = tmp_path / "shard-0-of-1.jsonl"
    p.write_bytes(b'{"item_id":"a"}\n{"item_id":"b"}\n{"item_id":"c", "x": 1')
    res = read_records_file(p)
    assert [r["item_id"] for r in res.records] == ["a", "b"] and res.truncated_tail
    with RecordWriter(p) as w:
        w.append({"item_id": "c"})
    assert p.read_bytes() == b'{"item_id":"a"}\n{"item_id":"b"}\n{"item_id":"c"}\n'


def test_file_holding_only_a_torn_line_is_emptied(tmp_path):
    p = tmp_path / "shard-0-of-1.jsonl"
    p.write_bytes(b'{"item_')
    with RecordWriter(p):
        pass
    assert p.read_bytes() == b""


@pytest.mark.parametrize("bad, lineno", [(b"not json\n", 2), (b"\n", 2), (b'["a list"]\n', 2), (b'{"x": 1}\n', 2)])
def test_corrupt_complete_line_is_an_error_naming_file_and_line(tmp_path, bad, lineno):
    p = tmp_path / "shard-0-of-1.jsonl"
    p.write_bytes(b'{"item_id":"a"}\n' + bad + b'{"item_id":"c"}\n')
    with pytest.raises(RecordsCorruptError, match=rf"shard-0-of-1\.jsonl:{lineno}:"):
        read_records_file(p)


def test_second_writer_on_same_shard_is_refused(tmp_path):
    p = tmp_path / "shard-0-of-2.jsonl"
    with RecordWriter(p):
        with pytest.raises(ShardBusyError, match="being written by another process"):
            RecordWriter(p).open()
    with RecordWriter(p) as w:  # released on close
        w.append({"item_id": "z"})


def test_unserialisable_record_is_a_clear_error(tmp_path):
    with RecordWriter(tmp_path / "shard-0-of-1.jsonl") as w:
        with pytest.raises(TypeError, match="record for item 'q' is not JSON-serialisable"):
            w.append({"item_id": "q", "tensor": object()})


def test_shard_files_lists_only_shard_jsonl(tmp_path):
    for name in ("shard-0-of-2.jsonl", "shard-1-of-2.jsonl", "shard-0-of-2.lock", "notes.jsonl", "shard-x-of-2.jsonl"):
        (tmp_path / name).write_text("")
    assert [p.name for p in shard_files(tmp_path)] == ["shard-0-of-2.jsonl", "shard-1-of-2.jsonl"]
