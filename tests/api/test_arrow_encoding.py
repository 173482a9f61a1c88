"""/api/v1/query's Arrow body is byte for byte what pyarrow's stream writer makes of the same batches."""

from __future__ import annotations

import io

import pyarrow as pa

from hub.api.v1_query import encode_arrow


def _writer_bytes(schema: pa.Schema, batches: list[pa.RecordBatch]) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue()


def test_the_arrow_body_is_the_stream_writers_output() -> None:
    schema = pa.schema([("n", pa.int64()), ("ward", pa.string()), ("day", pa.date32()), ("x", pa.float64())])
    batch = pa.record_batch(
        [pa.array([1, None, 3]), pa.array(["31120", None, "Cần Thơ"]), pa.array([1, None, 3], pa.date32()),
         pa.array([0.5, float("inf"), None])],
        schema=schema,
    )  # fmt: skip
    for batches in ([], [batch], [batch, batch.slice(1)]):
        body = b"".join(encode_arrow(iter(batches), schema))
        assert body == _writer_bytes(schema, batches)
        assert pa.ipc.open_stream(body).read_all().equals(pa.Table.from_batches(batches, schema=schema))


def test_dictionary_columns_take_the_writer() -> None:
    schema = pa.schema([("sex", pa.dictionary(pa.int32(), pa.string()))])
    batch = pa.record_batch([pa.array(["F", "M", "F"]).dictionary_encode()], schema=schema)
    body = b"".join(encode_arrow(iter([batch]), schema))
    assert pa.ipc.open_stream(body).read_all().column("sex").to_pylist() == ["F", "M", "F"]


def test_a_query_workers_messages_are_passed_on_as_they_came() -> None:
    """The IPC message each batch came in from a query worker is written as it is: the same stream."""
    schema = pa.schema([("n", pa.int64()), ("ward", pa.string())])
    batches = [
        pa.record_batch([pa.array(range(i, i + 5)), pa.array([f"W{j}" for j in range(5)])], schema=schema)
        for i in range(0, 15, 5)
    ]
    messages = [b.serialize().to_pybytes() for b in batches]
    received = [(pa.ipc.read_record_batch(pa.py_buffer(m), schema), m) for m in messages]
    body = b"".join(encode_arrow(iter(received), schema))
    assert body == _writer_bytes(schema, batches)
    marked = [(b, b"MESSAGE" if i == 1 else m) for i, (b, m) in enumerate(received)]
    assert b"MESSAGE" in b"".join(encode_arrow(iter(marked), schema))  # passed on, not written again
