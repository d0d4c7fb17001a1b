"""The codec rules one by one, without a store: which codec takes a value, chunking, compression,
and the errors a damaged payload gives (runstore.codecs). Round trips through a store are in
test_codecs.py and test_blobs.py."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import fractions
import hashlib
import io
import os
import pathlib
import threading
import uuid
import zoneinfo

import numpy as np
import pytest
import zstandard
from numpy.lib import format as npformat

from runstore import CodecError, Store
from runstore.codecs import (
    CaughtException,
    CHUNK_SIZE,
    CODECS,
    JSON_SQL_LIMIT,
    BytesCodec,
    ChunkSink,
    EncodedBlob,
    JsonCodec,
    NpyCodec,
    PickleCodec,
    choose_codec,
    chunk_list_key,
    compress_chunk,
    decompress_chunk,
    get_codec,
    type_name,
)
from runstore.codecs import _SAMPLE, _zstd


class _Sub(dict):
    pass


class _Color(enum.IntEnum):
    RED = 1


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("value, codec", [
    (None, "json"), (True, "json"), ("text", "json"), ("café ☕", "json"), (2**63 - 1, "json"), (-(2**63), "json"),
    (2**63, "safepickle"), (-(2**63) - 1, "safepickle"), (1.5, "json"), (float("inf"), "safepickle"), (float("-inf"), "safepickle"),
    (float("nan"), "safepickle"), ("\udcff", "safepickle"), ([1, "a", None], "json"), ({"k": {"n": [1.0]}}, "json"),
    ({1: "int key"}, "safepickle"), ({"\udcff": 1}, "safepickle"), ({"k": "\udcff"}, "safepickle"), ([[1], ["\udcff"]], "safepickle"),
    ((1, 2), "safepickle"), ({1}, "safepickle"), (b"raw", "bytes"), (bytearray(b"raw"), "safepickle"),
    (np.zeros(3), "npy"), (np.array([None]), "pickle"), (_nested(400), "json"), (_nested(401), "safepickle"),
    ({"a": _nested(399)}, "json"), ({"a": _nested(400)}, "safepickle"),
    # a plain item met first never ends the scan: the tuple after it still counts
    ([(1, 2), None], "safepickle"), ([(1, 2), True], "safepickle"), ([(1, 2), "s"], "safepickle"), ([(1, 2), 7], "safepickle"),
    ([(1, 2), 1.5], "safepickle"), ([(1, 2), [1]], "safepickle"), ({"b": (1, 2), "a": "s"}, "safepickle"),
    # the bulk checks (item types per container, min/max of its ints, nested containers only walked)
    ({"a": "s", "b": 2**63}, "safepickle"), ([True, "s", -(2**63) - 1], "safepickle"), ([True, False, 2**63 - 1], "json"),
    ({"a": [1, {"b": [2, {"c": (3,)}]}]}, "safepickle"), ({"a": [1, {"b": [2, {"c": [float("nan")]}]}]}, "safepickle"),
    ({"a": 1, 2: 1}, "safepickle"), ({"a": {"b": {"\udcff": 1}}}, "safepickle"), ([[], {}, [[]], {"": {}}], "json"),
    # the safe types, and what is not one of them (subclasses, functions, classes, other objects) anywhere inside
    (datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc), "safepickle"), (decimal.Decimal("1.1"), "safepickle"),
    (fractions.Fraction(1, 3), "safepickle"), (uuid.UUID(int=5), "safepickle"), (complex(1, 2), "safepickle"),
    (collections.OrderedDict(a=1), "safepickle"), (pathlib.PurePosixPath("/x"), "safepickle"), (range(3), "safepickle"),
    (CaughtException("builtins.ValueError", "bad", "tb"), "safepickle"), ([b"in", b"a list"], "safepickle"),
    ({"k": len}, "pickle"), ([1, (2, [_Sub()])], "pickle"), ((1, int), "pickle"), (_Sub(), "pickle"),
    ({"k": _Color.RED}, "pickle"), (np.float64(1.5), "safepickle"), ({"acc": np.float32(0.5)}, "safepickle"),
    (np.datetime64("2024-01-02"), "pickle"), (np.str_("x"), "pickle"), ([np.zeros(2)], "pickle"),
    (datetime.datetime(2024, 1, 2, tzinfo=zoneinfo.ZoneInfo("UTC")), "pickle"),
    (fractions.Fraction(10**5000, 3), "pickle"),  # its text: beyond int's 4,300-digit limit
    # JSON is kept for what SQL can read (≤ JSON_SQL_LIMIT): larger plain values are safepickle
    (list(range(20000)), "safepickle"), (["x" * 70000], "safepickle"), ({"k": "x" * (JSON_SQL_LIMIT - 8)}, "json"),
])
def test_the_safest_exact_codec_is_chosen(value: object, codec: str) -> None:
    assert choose_codec(value).name == codec


def test_shared_and_cyclic_containers_are_not_json() -> None:
    shared = [1]
    assert choose_codec([shared, shared]).name == "safepickle"  # written with the memo: identity kept
    assert choose_codec({"a": shared, "b": shared}).name == "safepickle"
    assert choose_codec([[1], [1]]).name == "json"  # equal is not shared
    cyclic: list = []
    cyclic.append(cyclic)
    assert choose_codec(cyclic).name == "safepickle"


def test_structured_arrays_with_names_npy_cannot_write_go_to_pickle() -> None:
    assert choose_codec(np.zeros(2, dtype=[("a", "i4"), ("b", "f8")])).name == "npy"
    assert choose_codec(np.zeros(2, dtype=[("ä", "i4")])).name == "npy"  # latin-1 is fine
    assert choose_codec(np.zeros(2, dtype=[("☕", "i4")])).name == "pickle"


def test_codec_names_safety_and_lookup() -> None:
    assert [(c.name, c.safe, c.streams, c.marks_trust) for c in CODECS.values()] == [
        ("json", True, True, False), ("bytes", True, True, False), ("npy", True, True, False),
        ("safepickle", True, False, True), ("pickle", False, False, True)]
    assert get_codec("npy").name == "npy"
    with pytest.raises(CodecError) as info:
        get_codec("zz")
    assert str(info.value) == "unknown encoding 'zz': written by a newer runstore?"


def test_json_is_compact_utf8() -> None:
    assert JsonCodec.dumps({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'.encode()
    with pytest.raises(CodecError, match="^value is not plain JSON: Out of range float values"):
        JsonCodec.dumps(float("nan"))
    assert JsonCodec().decode(io.BytesIO(b'{"a":[1]}')) == {"a": [1]}


def test_small_json_is_kept_readable_in_sql_up_to_the_limit() -> None:
    assert JSON_SQL_LIMIT == 64 * 1024
    store = Store(":memory:")
    at_limit = "x" * (JSON_SQL_LIMIT - 2)  # plus two quotes
    assert store.put_value(at_limit).json_value == f'"{at_limit}"'
    assert store.put_value(at_limit + "x").json_value is None
    assert store.put_value(b"raw").json_value is None


class _Trickle(io.RawIOBase):
    """A stream that hands out at most 3 bytes per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # type: ignore[override]
        piece = self._data.read(min(3, len(target)))
        target[: len(piece)] = piece
        return len(piece)


def test_bytes_decode_reads_until_full_and_refuses_short_payloads() -> None:
    assert BytesCodec().decode(_Trickle(b"0123456789"), 10) == b"0123456789"
    assert BytesCodec().decode(io.BytesIO(b"abc")) == b"abc"
    with pytest.raises(CodecError) as info:
        BytesCodec().decode(io.BytesIO(b"abc"), 4)
    assert str(info.value) == "stored bytes are shorter than recorded"


def _npy(array: np.ndarray) -> bytes:
    sink_data: list[bytes] = []
    sink = ChunkSink(lambda key, data: sink_data.append(bytes(data)))
    NpyCodec().encode(array, sink)
    sink.close()
    return b"".join(sink_data)


@pytest.mark.parametrize("array", [
    np.arange(12, dtype=np.int32).reshape(3, 4),
    np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    np.arange(40, dtype=np.int16).reshape(5, 8)[::2, 1::3],  # strided view
    np.zeros((0, 3)),
    np.array([7]),
])
def test_npy_encoding_is_numpys_own_and_keeps_layout(array: np.ndarray) -> None:
    data = _npy(array)
    loaded = np.load(io.BytesIO(data), allow_pickle=False)
    assert loaded.dtype == array.dtype and loaded.shape == array.shape and (loaded == array).all()
    back = NpyCodec().decode(_Trickle(data))
    assert back.dtype == array.dtype and (back == array).all()
    assert (back.flags.f_contiguous and not back.flags.c_contiguous) == (
        array.flags.f_contiguous and not array.flags.c_contiguous)


def test_npy_header_limit() -> None:
    """numpy reads back headers up to 10000 bytes: wider structured arrays go to pickle."""
    def fields(n: int) -> np.dtype:
        return np.dtype([(f"field_{i:05d}", "u1") for i in range(n)])

    assert choose_codec(np.zeros(2, dtype=fields(300))).name == "npy"
    assert choose_codec(np.zeros(2, dtype=fields(600))).name == "pickle"
    store = Store(":memory:")
    wide = np.zeros(2, dtype=fields(600))
    ref = store.put_value(wide)
    assert ref.encoding == "pickle" and store.load_value(ref.blob_key, ref.encoding).dtype == wide.dtype
    version_2 = io.BytesIO()  # readable when another writer used format 2.0
    small = np.arange(5, dtype=np.int64)
    npformat.write_array_header_2_0(version_2, npformat.header_data_from_array_1_0(small))
    assert (NpyCodec().decode(io.BytesIO(version_2.getvalue() + small.tobytes())) == small).all()
    # a stored (hostile or damaged) payload with a huge header is a CodecError, not numpy's ValueError
    header = io.BytesIO()
    npformat.write_array_header_2_0(header, npformat.header_data_from_array_1_0(wide))
    with pytest.raises(CodecError, match="^unreadable .npy header: Header info length"):
        NpyCodec().decode(io.BytesIO(header.getvalue() + bytes(1200)))


def test_npy_decode_refuses_bad_payloads() -> None:
    good = _npy(np.arange(10, dtype=np.int64))
    with pytest.raises(CodecError) as info:
        NpyCodec().decode(io.BytesIO(good[:-8]))
    assert str(info.value) == "stored array is shorter than its header says"
    header = io.BytesIO()
    npformat.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    with pytest.raises(CodecError) as info:
        NpyCodec().decode(io.BytesIO(header.getvalue() + b"\0" * 8))
    assert str(info.value) == "refusing an object-dtype .npy payload"
    version_3 = good.replace(b"\x93NUMPY\x01\x00", b"\x93NUMPY\x03\x00", 1)
    with pytest.raises(CodecError) as info:
        NpyCodec().decode(io.BytesIO(version_3))
    assert str(info.value) == ".npy format version (3, 0) is not supported"


def test_unpicklable_value_message() -> None:
    lock = threading.Lock()
    with pytest.raises(CodecError) as info:
        PickleCodec().encode(lock, io.BytesIO())
    assert str(info.value).startswith("cannot pickle _thread.lock: ")


def test_type_names() -> None:
    class Local:
        pass

    assert (type_name({}), type_name(1.5), type_name(np.zeros(1))) == ("dict", "float", "numpy.ndarray")
    assert type_name(Local()) == f"{__name__}.test_type_names.<locals>.Local"


# ------------------------------------------------------------------ chunking


def _sink(chunk_size: int) -> tuple[ChunkSink, list[tuple[str, bytes]]]:
    seen: list[tuple[str, bytes]] = []
    return ChunkSink(lambda key, data: seen.append((key, bytes(data))), chunk_size=chunk_size), seen


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_chunks_straddling_writes() -> None:
    sink, seen = _sink(4)
    assert sink.writable()
    assert [sink.write(b"ab"), sink.write(b""), sink.write(b"cdefghij"), sink.write(bytearray(b"k"))] == [2, 0, 8, 1]
    blob = sink.close()
    assert [data for _, data in seen] == [b"abcd", b"efgh", b"ijk"]
    assert [key for key, _ in seen] == [_sha(b"abcd"), _sha(b"efgh"), _sha(b"ijk")]
    # Several chunks: the key is derived from the chunk keys, each byte hashed once (#18).
    assert blob == EncodedBlob(chunk_list_key(11, [key for key, _ in seen]), 11, tuple(key for key, _ in seen))
    assert sink.close() is blob and len(seen) == 3  # closing again changes nothing


def test_buffer_filled_exactly_then_whole_chunks_from_the_caller() -> None:
    sink, seen = _sink(4)
    sink.write(b"abc")
    sink.write(b"d" + b"efgh" * 2)  # fills the buffer, then two whole chunks
    blob = sink.close()
    assert [data for _, data in seen] == [b"abcd", b"efgh", b"efgh"]
    assert blob.size == 12 and len(blob.chunk_keys) == 3  # no empty fourth chunk


def test_one_chunk_blob_and_empty_blob() -> None:
    sink, seen = _sink(4)
    sink.write(b"abcd")
    assert sink.close() == EncodedBlob(_sha(b"abcd"), 4, (_sha(b"abcd"),)) and len(seen) == 1
    sink, seen = _sink(4)
    sink.write(b"ab")
    assert sink.close() == EncodedBlob(_sha(b"ab"), 2, (_sha(b"ab"),))
    sink, seen = _sink(4)
    assert sink.close() == EncodedBlob(_sha(b""), 0, (_sha(b""),)) and seen == [(_sha(b""), b"")]


def test_a_multibyte_memoryview_is_counted_in_bytes() -> None:
    sink, seen = _sink(8)
    assert sink.write(memoryview(np.arange(3, dtype=np.int32))) == 12
    assert sink.close().size == 12 and [len(d) for _, d in seen] == [8, 4]


def test_chunk_size_is_16_mib() -> None:
    assert CHUNK_SIZE == 16 * 1024 * 1024


# ------------------------------------------------------------------ compression


def test_compression_pays_or_is_skipped() -> None:
    assert compress_chunk(b"a" * 63) == ("none", b"a" * 63)  # too small to bother
    method, packed = compress_chunk(b"a" * 64)
    assert method == "zstd" and packed == zstandard.ZstdCompressor(level=3).compress(b"a" * 64)
    noise = os.urandom(5000)
    assert compress_chunk(noise) == ("none", noise)
    half = os.urandom(2000) + bytes(2000)  # compresses to about half
    method, packed = compress_chunk(half)
    assert method == "zstd" and len(packed) < 0.6 * len(half)


def test_large_chunks_are_judged_by_a_sample_of_their_start() -> None:
    assert _SAMPLE == 256 * 1024
    noisy_start = os.urandom(256 * 1024) + bytes(768 * 1024)  # 1 MiB, its first quarter random
    assert compress_chunk(noisy_start)[0] == "zstd"  # exactly 4 samples long: no sampling yet
    longer = noisy_start + b"\0"
    method, data = compress_chunk(longer)
    assert method == "none" and data is longer  # the sample did not pay: kept as is
    zeros = bytes(1024 * 1024 + 1)
    assert compress_chunk(zeros)[0] == "zstd"


def test_decompression() -> None:
    data = b"b" * 5000
    method, packed = compress_chunk(data)
    assert decompress_chunk(method, bytes(packed), len(data)) == data
    assert decompress_chunk("none", b"as is", 5) == b"as is"
    with pytest.raises(CodecError) as info:
        decompress_chunk("lz4", b"x", 1)
    assert str(info.value) == "unknown chunk compression 'lz4'"


def test_zstd_objects_are_cached_per_thread() -> None:
    assert _zstd("compress") is _zstd("compress") and _zstd("decompress") is _zstd("decompress")
    assert isinstance(_zstd("decompress"), zstandard.ZstdDecompressor)
    assert isinstance(_zstd("sample"), zstandard.ZstdCompressor) and _zstd("sample") is not _zstd("compress")
    other: list = []
    thread = threading.Thread(target=lambda: other.append(_zstd("compress")))
    thread.start()
    thread.join()
    assert other[0] is not _zstd("compress")


def test_the_codec_base_class_is_abstract_and_bytes_are_written_as_is() -> None:
    from runstore.codecs import Codec

    base = Codec()
    for call in (lambda: base.accepts(1), lambda: base.encode(1, io.BytesIO()), lambda: base.decode(io.BytesIO())):
        with pytest.raises(NotImplementedError):
            call()
    out = io.BytesIO()
    BytesCodec().encode(b"\x00raw", out)
    assert out.getvalue() == b"\x00raw"


def test_whole_chunks_are_handed_on_during_write_and_close_closes() -> None:
    import dataclasses

    sink, seen = _sink(4)
    sink.write(b"abcd")
    assert [data for _, data in seen] == [b"abcd"] and not sink.closed  # not held until close
    sink.write(b"ef")
    assert len(seen) == 1
    blob = sink.close()
    assert sink.closed and [data for _, data in seen] == [b"abcd", b"ef"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        blob.size = 0  # type: ignore[misc]


def _text_like(size_words: int) -> bytes:
    """Word soup: compressible, and each zstd level packs it differently."""
    import random

    r = random.Random(5)
    words = [bytes(r.choice(b"abcdefghij") for _ in range(r.randint(2, 9))) for _ in range(3000)]
    return b" ".join(r.choice(words) for _ in range(size_words))


def test_zstd_levels_one_for_the_sample_three_for_the_chunk() -> None:
    data = _text_like(60000)
    levels = {level: zstandard.ZstdCompressor(level=level).compress(data) for level in (1, 2, 3, 4)}
    assert len(set(levels.values())) == 4  # the data tells the levels apart
    assert _zstd("sample").compress(data) == levels[1]
    assert _zstd("compress").compress(data) == levels[3]
    assert compress_chunk(data) == ("zstd", levels[3])


def test_every_structured_array_taken_as_npy_loads_back() -> None:
    """Around numpy's 10000-byte header limit: npy only when numpy will read the header back."""
    store = Store(":memory:")
    encodings = set()
    for n in range(395, 440, 3):
        array = np.zeros(1, dtype=[(f"field_{i:05d}", "u1") for i in range(n)])
        ref = store.put_value(array)
        encodings.add(ref.encoding)
        assert store.load_value(ref.blob_key, ref.encoding).dtype == array.dtype, n
    assert encodings == {"npy", "pickle"}  # the range crosses the limit


@pytest.mark.parametrize("make", [
    lambda n: ["x" * (n - 4)],                      # ["xxx"]
    lambda n: {"k": "é" * ((n - 8) // 2)},          # {"k":"ééé"}: 2 UTF-8 bytes a character
    lambda n: [0] * ((n - 1) // 2),                 # [0,0,...,0]
    lambda n: {str(i).zfill(6): 0 for i in range((n - 1) // 11)},  # {"000000":0,...}
])
def test_json_is_chosen_exactly_up_to_the_sql_limit(make) -> None:
    # The walk's lower bound of the JSON text never sends a value that fits to safepickle.
    for n in range(JSON_SQL_LIMIT - 12, JSON_SQL_LIMIT + 12):
        value = make(n)
        text = JsonCodec.dumps(value)
        assert choose_codec(value).name == ("json" if len(text) <= JSON_SQL_LIMIT else "safepickle"), (n, len(text))
