"""Every codec round-trips exactly, and values JSON would change never go to JSON."""

from __future__ import annotations

import collections
import datetime
import enum
import io
import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from runstore import CodecError, Store
from runstore.codecs import CHUNK_SIZE, ChunkSink, blob_key_of, choose_codec, chunk_list_key, get_codec

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2


def same(a: Any, b: Any) -> bool:
    """Equal *and* of the same types all the way down (NaN equals NaN, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    return a == b


@pytest.fixture(scope="module")
def store() -> Store:
    return Store(":memory:")


def roundtrip(store: Store, value: Any) -> tuple[str, Any]:
    ref = store.put_value(value)
    return ref.encoding, store.load_value(ref.blob_key, ref.encoding)


# ------------------------------------------------------------------ json

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)))
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), children, max_size=5),
    max_leaves=30,
)


@SETTINGS
@given(value=json_values)
def test_plain_data_goes_to_json_and_round_trips_exactly(store: Store, value: Any) -> None:
    encoding, back = roundtrip(store, value)
    assert encoding == "json"
    assert same(value, back)


@pytest.mark.parametrize(
    "value",
    [2**63 - 1, -(2**63), 0.0, -0.0, 1e308, 5e-324, "", "é\u2603\U0001f600", [], {}, {"": None},
     [True, 1, 1.0, False, 0, 0.0], {"nested": {"deep": [[[]]]}}],
)
def test_json_edge_values(store: Store, value: Any) -> None:
    encoding, back = roundtrip(store, value)
    assert encoding == "json"
    assert same(value, back)


def test_small_json_is_readable_from_sql(store: Store) -> None:
    ref = store.put_value({"accuracy": 0.93})
    assert ref.json_value == '{"accuracy":0.93}'
    assert store.put_value(list(range(20000))).json_value is None  # > 64 KiB


# ------------------------------------------------------------------ every plain type, nested anywhere
# Issue #18: a value inside a dict (or a list inside a dict inside a list ...) must come back with
# its own type, whichever codec the whole value lands in: tuples stay tuples, sets stay sets.

_hashable = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(max_size=8),
    lambda children: st.tuples(children, children) | st.frozensets(children, max_size=3),
    max_leaves=6,
)
_any_scalar = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63, max_value=2**200)
    | st.floats() | st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0]) | st.text() | st.binary(max_size=8)
)
all_plain_values = st.recursive(
    _any_scalar,
    lambda children: st.lists(children, max_size=4)
    | st.lists(children, max_size=3).map(tuple)
    | st.sets(_hashable, max_size=3)
    | st.frozensets(_hashable, max_size=3)
    | st.dictionaries(st.text(max_size=5) | st.integers() | _hashable, children, max_size=4),
    max_leaves=25,
)


def _same_deep(a: Any, b: Any) -> bool:
    """:func:`same`, also for sets (compared as sets: their members are hashable and NaN-free)."""
    if isinstance(a, (set, frozenset)):
        return type(a) is type(b) and a == b and all(type(x) in {type(y) for y in b if y == x} for x in a)
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_deep(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(_same_deep(a[k], b[k]) for k in a)
    return same(a, b)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inner=all_plain_values)
def test_every_plain_value_round_trips_exactly_also_inside_a_dict(store: Store, inner: Any) -> None:
    for value in (inner, {"k": inner}, [{"k": inner}], {"a": {"b": [inner]}}):
        encoding, back = roundtrip(store, value)
        assert _same_deep(value, back), (encoding, value, back)


@pytest.mark.parametrize("value", [
    {"k": (1, 2)}, {"k": {1, 2}}, {"k": frozenset({1})}, {"k": [1, (2,)]}, {"k": {"j": (1,)}},
    {"k": b"raw"}, {"k": 2**64}, {"k": float("nan")}, {"k": -0.0}, {"k": {1: "int key"}},
])
def test_values_inside_dicts_keep_their_types(store: Store, value: Any) -> None:
    encoding, back = roundtrip(store, value)
    assert _same_deep(value, back)
    # only what JSON carries exactly is JSON
    assert (encoding == "json") == (value == {"k": -0.0})


# ------------------------------------------------------------------ what JSON would change -> pickle

def _shared() -> Any:
    inner = [1, 2]
    return [inner, inner]


def _cyclic() -> Any:
    a: list[Any] = [1]
    a.append(a)
    return a


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


NOT_JSON = {
    "tuple": (1, "two"),
    "tuple_in_list": [1, (2, 3)],
    "nan": float("nan"),
    "inf": [float("inf"), float("-inf")],
    "int_beyond_int64": 2**63,
    "int_below_int64": -(2**63) - 1,
    "huge_int": 10**400,
    "int_key": {1: "a"},
    "tuple_key": {(1, 2): "a"},
    "none_key": {None: 1},
    "ordered_dict": collections.OrderedDict([("b", 1), ("a", 2)]),
    "int_enum": Color.GREEN,
    "int_enum_in_list": [Color.RED, 1],
    "str_subclass": np.str_("x"),
    "lone_surrogate": "a\ud800b",
    "surrogate_key": {"\udfff": 1},
    "set": {1, 2},
    "bytearray": bytearray(b"xy"),
    "fraction": Fraction(1, 3),
}


#: What neither JSON nor the safe codec's allow-list takes: cloudpickle (trusted loads only).
NOT_SAFE = {"int_enum", "int_enum_in_list", "str_subclass"}


@pytest.mark.parametrize("name", sorted(NOT_JSON))
def test_values_json_would_change_go_to_safepickle_or_pickle_and_come_back_exactly(store: Store, name: str) -> None:
    value = NOT_JSON[name]
    encoding, back = roundtrip(store, value)
    assert encoding == ("pickle" if name in NOT_SAFE else "safepickle")
    assert same(value, back)


def test_deep_nesting_stays_json_while_json_can_carry_it(store: Store) -> None:
    assert roundtrip(store, _deep(300)) == ("json", _deep(300))
    assert choose_codec(_deep(5000)).name == "pickle"  # json would hit the recursion limit, so would the safe pickler


def test_shared_and_cyclic_containers_keep_their_identity(store: Store) -> None:
    encoding, back = roundtrip(store, _shared())
    assert encoding == "safepickle" and back[0] is back[1] and back == [[1, 2], [1, 2]]
    encoding, back = roundtrip(store, _cyclic())
    assert encoding == "safepickle" and back[1] is back


anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
    | st.sampled_from([Color.RED, Color.GREEN]),
    lambda children: st.lists(children, max_size=4)
    | st.tuples(children, children)
    | st.dictionaries(st.integers() | st.text() | st.tuples(st.integers()), children, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(value=anything)
def test_any_value_round_trips_exactly_and_json_only_when_exact(store: Store, value: Any) -> None:
    encoding, back = roundtrip(store, value)
    assert same(value, back)
    if encoding == "json":
        import json

        assert same(json.loads(json.dumps(value)), value)


# ------------------------------------------------------------------ bytes

@SETTINGS
@given(value=st.binary(max_size=5000))
def test_bytes_round_trip(store: Store, value: bytes) -> None:
    encoding, back = roundtrip(store, value)
    assert encoding == "bytes" and type(back) is bytes and back == value


# ------------------------------------------------------------------ npy

scalar_dtypes = (
    hnp.boolean_dtypes() | hnp.integer_dtypes(endianness="?") | hnp.unsigned_integer_dtypes(endianness="?")
    | hnp.floating_dtypes(endianness="?") | hnp.complex_number_dtypes(endianness="?")
    | hnp.datetime64_dtypes(endianness="?") | hnp.timedelta64_dtypes(endianness="?")
    | hnp.byte_string_dtypes(endianness="?") | hnp.unicode_string_dtypes(endianness="?")
)
all_dtypes = scalar_dtypes | hnp.nested_dtypes(scalar_dtypes, max_leaves=4)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    array = draw(hnp.arrays(all_dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))
    layout = draw(st.sampled_from(["c", "fortran", "strided", "transposed"]))
    if layout == "fortran":
        array = np.asfortranarray(array)
    elif layout == "strided" and array.ndim:
        array = array[..., ::2]
    elif layout == "transposed":
        array = array.T
    return array


def _latin1(dtype: np.dtype) -> bool:
    try:
        repr(np.lib.format.dtype_to_descr(dtype)).encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


@SETTINGS
@given(array=arrays())
def test_arrays_round_trip_as_npy(store: Store, array: np.ndarray) -> None:
    encoding, back = roundtrip(store, array)
    # .npy 1.0/2.0 headers are latin-1: other field names need .npy 3.0, so pickle.
    assert encoding == ("npy" if repr(array.dtype.descr).isascii() or _latin1(array.dtype) else "pickle")
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()  # bit-exact, NaN payloads included
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        assert back.flags.f_contiguous
    assert back.flags.writeable


@pytest.mark.parametrize(
    "array",
    [
        np.array(3.5),
        np.zeros((0,)),
        np.zeros((3, 0, 2), dtype=np.int8),
        np.arange(12.0).reshape(3, 4, order="F"),
        np.arange(40).reshape(5, 8)[::2, 1::3],
        np.zeros(5, dtype=[("x", "<f8"), ("y", ">i4"), ("tag", "S3")]),
        np.zeros(4, dtype=np.dtype([("a", "i1"), ("b", "f8")], align=True)),
        np.array(["2024-01-01T12:00", "NaT"], dtype="datetime64[s]"),
        np.arange(5, dtype=">f8"),
        np.array([1 + 2j], dtype=">c16"),
    ],
    ids=["0d", "empty", "empty3d", "fortran", "strided", "structured", "aligned", "datetime", "bigendian",
         "complex"],
)
def test_array_edge_cases(store: Store, array: np.ndarray) -> None:
    encoding, back = roundtrip(store, array)
    assert encoding == "npy"
    assert back.dtype == array.dtype and back.shape == array.shape and back.tobytes() == array.tobytes()


def test_arrays_numpy_cannot_store_without_pickle_go_to_pickle(store: Store) -> None:
    for value in (np.array([None, 1], dtype=object), np.zeros(2, dtype=[("ж", "f8")]),
                  np.ma.masked_array([1, 2], mask=[0, 1]), np.datetime64("2024-01-02")):
        encoding, back = roundtrip(store, value)
        assert encoding == "pickle", value
        assert type(back) is type(value)
    encoding, back = roundtrip(store, np.float64(1.5))  # a numpy number scalar: the safe codec
    assert encoding == "safepickle" and type(back) is np.float64 and back == 1.5


def test_npy_payload_is_a_real_npy_file(store: Store) -> None:
    array = np.arange(10, dtype=np.int16).reshape(2, 5)
    ref = store.put_value(array)
    loaded = np.load(io.BytesIO(store.open_blob(ref.blob_key).read()), allow_pickle=False)
    assert (loaded == array).all()


def test_npy_refuses_object_payload() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([None]), allow_pickle=True)
    buffer.seek(0)
    with pytest.raises(CodecError):
        get_codec("npy").decode(buffer)


# ------------------------------------------------------------------ pickle

def test_pickle_handles_functions_and_instances(store: Store) -> None:
    offset = 3

    def add(x: int) -> int:
        return x + offset

    encoding, back = roundtrip(store, add)
    assert encoding == "pickle" and back(1) == 4
    encoding, back = roundtrip(store, Fraction(2, 7))
    assert back == Fraction(2, 7)


def test_unpicklable_value_raises_codec_error(store: Store) -> None:
    import threading

    with pytest.raises(CodecError, match="cannot pickle"):
        store.put_value(threading.Lock())
    with pytest.raises(TypeError):  # CodecError is also a TypeError
        store.put_value(threading.Lock())


def test_unknown_encoding_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="newer runstore"):
        get_codec("arrow")


def test_codec_choice_is_safest_first() -> None:
    assert choose_codec({"a": [1]}).name == "json"
    assert choose_codec(b"x").name == "bytes"
    assert choose_codec(np.zeros(2)).name == "npy"
    assert choose_codec((1,)).name == "safepickle"
    assert choose_codec((1, Color.RED)).name == "pickle"


# ------------------------------------------------------------------ ChunkSink

@SETTINGS
@given(pieces=st.lists(st.binary(max_size=40), max_size=12), size=st.integers(min_value=1, max_value=17))
def test_chunk_sink_cuts_any_write_pattern_the_same_way(pieces: list[bytes], size: int) -> None:
    import hashlib

    chunks: list[bytes] = []
    sink = ChunkSink(lambda key, data: chunks.append(bytes(data)), chunk_size=size)
    for piece in pieces:
        sink.write(piece)
    blob = sink.close()
    whole = b"".join(pieces)
    assert b"".join(chunks) == whole and blob.size == len(whole)
    assert all(len(c) == size for c in chunks[:-1]) and 0 < len(chunks[-1]) <= size or whole == b""
    assert list(blob.chunk_keys) == [hashlib.sha256(c).hexdigest() for c in chunks]
    # One chunk: the sha256 of the bytes. Several: derived from the chunk keys (hash once, #18).
    if len(chunks) == 1:
        assert blob.key == hashlib.sha256(whole).hexdigest()
    else:
        assert blob.key == chunk_list_key(len(whole), blob.chunk_keys) and blob.key.startswith("t")
    assert blob.key == blob_key_of(whole, chunk_size=size)


def test_chunk_size_is_16_mib() -> None:
    assert CHUNK_SIZE == 16 * 1024 * 1024


# ------------------------------------------------------------------ safepickle: every safe type, any store, any reader

def _safe_timezones() -> st.SearchStrategy[Any]:
    offsets = st.timedeltas(min_value=datetime.timedelta(hours=-23), max_value=datetime.timedelta(hours=23))
    return st.none() | st.just(datetime.timezone.utc) | st.builds(datetime.timezone, offsets)


_safe_scalar = (
    _any_scalar | st.dates() | st.times(timezones=_safe_timezones()) | st.datetimes(timezones=_safe_timezones())
    | st.timedeltas() | st.decimals(allow_nan=False) | st.fractions() | st.uuids()
    | st.complex_numbers(allow_nan=False) | st.binary(max_size=8).map(bytearray)
)
_safe_hashable = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(max_size=8)
    | st.dates() | st.decimals(allow_nan=False) | st.uuids(),
    lambda children: st.tuples(children, children) | st.frozensets(children, max_size=3),
    max_leaves=6,
)
all_safe_values = st.recursive(
    _safe_scalar,
    lambda children: st.lists(children, max_size=4)
    | st.lists(children, max_size=3).map(tuple)
    | st.sets(_safe_hashable, max_size=3)
    | st.frozensets(_safe_hashable, max_size=3)
    | st.dictionaries(st.text(max_size=5) | st.integers() | _safe_hashable, children, max_size=4)
    | st.dictionaries(st.text(max_size=3), children, max_size=3).map(collections.OrderedDict),
    max_leaves=25,
)


def _same_safe(a: Any, b: Any) -> bool:
    """:func:`_same_deep` that also tells Decimal('-0') from Decimal('0') and walks OrderedDicts."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_safe(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(_same_safe(a[k], b[k]) for k in a)
    return _same_deep(a, b)


@pytest.fixture(scope="module", params=["memory", "file"])
def any_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    store = Store(":memory:" if request.param == "memory" else tmp_path_factory.mktemp("safe") / "runs.db")
    yield store
    store.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inner=all_safe_values)
def test_every_safe_value_round_trips_exactly_without_trust(any_store: Store, inner: Any) -> None:
    # Saved and loaded through a real store (memory and file), by the writer (its MAC: no opcode
    # check) and as a stranger would (no MAC: checked first); never cloudpickle, so never trust.
    for value in (inner, {"k": inner}, [{"k": inner}]):
        ref = any_store.put_value(value)
        assert ref.encoding in ("json", "bytes", "safepickle"), (ref.encoding, value)
        assert _same_safe(value, any_store.load_value(ref.blob_key, ref.encoding))
        if ref.encoding == "safepickle":
            codec = get_codec("safepickle")
            data = any_store.open_blob(ref.blob_key).read()
            assert _same_safe(value, codec.decode(io.BytesIO(data), len(data)))


def test_large_plain_values_are_safepickle_and_small_ones_stay_readable_json(store: Store) -> None:
    big = {f"key{i}": i for i in range(50_000)}
    ref = store.put_value(big)
    assert ref.encoding == "safepickle" and ref.json_value is None
    assert store.load_value(ref.blob_key, ref.encoding) == big
    small = {"lr": 0.1, "layers": [64, 32]}
    ref = store.put_value(small)
    assert ref.encoding == "json" and ref.json_value == '{"lr":0.1,"layers":[64,32]}'
