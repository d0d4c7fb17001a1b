"""Codecs, hashing and chunking of artifact values. Pure: no SQL here.

A value is *encoded* by the first codec that accepts it, safest first:

==========  ========================================================  =========
name        accepts                                                   safe to
                                                                      load from
                                                                      strangers
==========  ========================================================  =========
json        None/bool/int (64-bit)/finite float/str, lists and dicts  yes
            of them with str keys, no shared or cyclic containers,
            whose JSON text is at most :data:`JSON_SQL_LIMIT` bytes
bytes       exactly ``bytes``                                         yes
npy         ``numpy.ndarray`` without object dtype (``.npy``)         yes
safepickle  values made only of the types of :func:`safe_types`      yes
            (tuples, sets, big ints, NaN, datetimes, Decimal, ...,
            and large plain lists/dicts): standard pickle protocol 5,
            read by a restricted unpickler
pickle      everything else (cloudpickle, protocol 5)                 no
==========  ========================================================  =========

The encoded bytes stream through a :class:`ChunkSink`, which cuts them into chunks
of at most :data:`CHUNK_SIZE` bytes without ever holding the whole encoding, and
hashes each byte once on the way: a chunk's key is the sha256 of its bytes; the blob key
of a one-chunk value is that same sha256 (of the whole encoding), the key of a value of
several chunks is derived from its size and chunk keys (:func:`chunk_list_key`). Decoding reads a
file-like object over the stored chunks, so a 100 MiB array is rebuilt in place.

Example
-------
>>> import io
>>> codec = choose_codec({"lr": 0.01, "layers": [64, 32]})
>>> codec.name
'json'
>>> chunks = []
>>> sink = ChunkSink(lambda key, data: chunks.append(bytes(data)))
>>> codec.encode({"lr": 0.01}, sink)
>>> encoded = sink.close()
>>> codec.decode(io.BytesIO(b"".join(chunks)))
{'lr': 0.01}
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import re
import sys
import threading
from dataclasses import dataclass
from typing import IO, Any, Callable, Sequence

from .errors import CodecError, UnsafeValue

__all__ = [
    "CHUNK_SIZE",
    "chunk_list_key",
    "is_chunk_list_key",
    "blob_key_of",
    "key_matches",
    "Codec",
    "ChunkSink",
    "EncodedBlob",
    "CODECS",
    "CaughtException",
    "SafePickleCodec",
    "check_opcodes",
    "safe_types",
    "choose_codec",
    "encode_value",
    "get_codec",
    "type_name",
    "compress_chunk",
    "decompress_chunk",
]

#: Largest chunk stored in one row; well below SQLite's 1 GB value limit.
CHUNK_SIZE = 16 * 1024 * 1024

#: Small enough to keep as a JSON value in SQL (SPEC §3).
JSON_SQL_LIMIT = 64 * 1024

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


#: First character of a key derived from a chunk list (never a hex digit, so such a key can
#: never equal the sha256 of some other value's bytes).
_CHUNK_LIST_MARK = "t"


def chunk_list_key(size: int, chunk_keys: Sequence[str]) -> str:
    """The blob key of a value of several chunks: a hash of its size and chunk keys, in order.

    The bytes of a large value are hashed once, chunk by chunk (each chunk's key is the
    sha256 of its bytes); the blob key commits to those keys, so checking every chunk
    against its key and this key against the chunk list checks every byte. Values
    stored before this rule (keyed by the sha256 of all their bytes) keep their keys and
    are checked that way (:func:`is_chunk_list_key` tells the two apart).

    Example
    -------
    >>> key = chunk_list_key(20, ["a" * 64, "b" * 64])
    >>> key[0], len(key), is_chunk_list_key(key), is_chunk_list_key("a" * 64)
    ('t', 64, True, False)
    """
    text = f"runstore chunk list\n{size}\n" + "\n".join(chunk_keys)
    return _CHUNK_LIST_MARK + hashlib.sha256(text.encode("utf-8")).hexdigest()[1:]


def is_chunk_list_key(key: object) -> bool:
    """True for a key made by :func:`chunk_list_key` (sha256 keys are lowercase hex).

    Example
    -------
    >>> is_chunk_list_key(chunk_list_key(1, ["k", "k"])), is_chunk_list_key("0" * 64)
    (True, False)
    """
    return isinstance(key, str) and key.startswith(_CHUNK_LIST_MARK)


def blob_key_of(data: bytes | bytearray | memoryview, chunk_size: int | None = None) -> str:
    """The key :class:`ChunkSink` gives these encoded bytes (one chunk: their sha256).

    Example
    -------
    >>> import hashlib
    >>> blob_key_of(b"abc") == hashlib.sha256(b"abc").hexdigest()
    True
    >>> blob_key_of(b"abcdef", chunk_size=4) == chunk_list_key(6, [
    ...     hashlib.sha256(b"abcd").hexdigest(), hashlib.sha256(b"ef").hexdigest()])
    True
    """
    sink = ChunkSink(lambda key, chunk: None, chunk_size or CHUNK_SIZE)
    sink.write(data)
    return sink.close().key


def key_matches(key: str, data: bytes | bytearray | memoryview) -> bool:
    """Do these encoded bytes hash to ``key``, in whichever form the key was made?

    A chunk-list key (:func:`chunk_list_key`) is checked by re-chunking; any other key
    is the sha256 of all the bytes (every one-chunk value, and values of several chunks
    stored before chunk-list keys).

    Example
    -------
    >>> import hashlib
    >>> key_matches(hashlib.sha256(b"abc").hexdigest(), b"abc"), key_matches(blob_key_of(b"abc"), b"abd")
    (True, False)
    """
    if is_chunk_list_key(key):
        return blob_key_of(data) == key
    return hashlib.sha256(data).hexdigest() == key


@dataclass(frozen=True)
class EncodedBlob:
    """What encoding a value produced: its key, size, and the chunk keys in order.

    Example
    -------
    >>> sink = ChunkSink(lambda key, data: None)
    >>> _ = sink.write(b"abc")
    >>> sink.close().size
    3
    """

    key: str
    size: int
    chunk_keys: tuple[str, ...]


class ChunkSink(io.RawIOBase):
    """A write-only file that cuts what it receives into chunks of ``chunk_size``.

    ``on_chunk(key, data)`` is called with each full chunk (a bytes-like object that
    is only valid during the call) and its sha256; :meth:`close` flushes the last
    partial chunk and returns the :class:`EncodedBlob`. Large writes are sliced
    without copying. Each byte is hashed once: into its chunk's key; the blob key is
    that key for a one-chunk value, else :func:`chunk_list_key` of the chunk keys.

    Example
    -------
    >>> seen = []
    >>> sink = ChunkSink(lambda key, data: seen.append(len(data)), chunk_size=4)
    >>> sink.write(b"abcdefghij")
    10
    >>> blob = sink.close()
    >>> seen, blob.size
    ([4, 4, 2], 10)
    """

    def __init__(self, on_chunk: Callable[[str, Any], object], chunk_size: int = CHUNK_SIZE) -> None:
        super().__init__()
        self._on_chunk = on_chunk
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self._size = 0
        self._chunk_keys: list[str] = []
        self._result: EncodedBlob | None = None

    def writable(self) -> bool:
        return True

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        key = hashlib.sha256(data).hexdigest()
        self._chunk_keys.append(key)
        self._on_chunk(key, data)

    def write(self, data: Any) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        n = len(view)
        if not n:
            return 0
        self._size += n
        pos = 0
        if self._buffer:
            take = min(self._chunk_size - len(self._buffer), n)
            self._buffer += view[:take]
            pos = take
            if len(self._buffer) == self._chunk_size:
                self._emit(self._buffer)
                self._buffer = bytearray()
        # Whole chunks straight from the caller's buffer: no copy.
        while n - pos >= self._chunk_size:
            self._emit(view[pos : pos + self._chunk_size])
            pos += self._chunk_size
        if pos < n:
            self._buffer += view[pos:]
        return n

    def close(self) -> EncodedBlob:  # type: ignore[override]
        if self._result is None:
            if self._buffer or not self._chunk_keys:  # the last part (an empty value: one empty chunk)
                self._emit(self._buffer)
                self._buffer = bytearray()
            keys = tuple(self._chunk_keys)
            key = keys[0] if len(keys) == 1 else chunk_list_key(self._size, keys)
            self._result = EncodedBlob(key, self._size, keys)
            super().close()
        return self._result


class Codec:
    """One way of turning a value into bytes and back.

    Subclasses set ``name`` (recorded per artifact), ``safe`` (decoding cannot run
    code) and implement :meth:`accepts`, :meth:`encode` and :meth:`decode`.

    Example
    -------
    >>> get_codec("bytes").safe
    True
    """

    name: str = ""
    safe: bool = True
    #: Decoded while the stored bytes stream in (they cannot run code or blow up);
    #: False: decoded only from a private copy whose every byte was checked first.
    streams: bool = True
    #: Writing it records the writer's trust MAC (``blob_trust``), and the writer's
    #: own values are decoded with :meth:`decode_own`.
    marks_trust: bool = False

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def encode(self, value: Any, sink: IO[bytes] | ChunkSink) -> None:
        raise NotImplementedError

    def decode(self, stream: IO[bytes], size: int | None = None) -> Any:
        raise NotImplementedError

    def decode_own(self, stream: IO[bytes], size: int | None = None) -> Any:
        """Decode bytes runstore's own encoder wrote (the reader's MAC says so).

        Codecs that check hostile input before decoding may skip the checks only
        hostile bytes can fail; the default is :meth:`decode`.
        """
        return self.decode(stream, size)


#: Deeper nesting goes to pickle: ``json`` recurses and would hit the recursion limit.
_JSON_MAX_DEPTH = 400


def _utf8_ok(text: str) -> bool:
    """False for strings with lone surrogates, which UTF-8 JSON cannot carry."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_LEAF_TYPES = frozenset({str, int, float, bool, type(None)})
_JSON_TYPES = _LEAF_TYPES | {list, dict}
_TREE_LEAVES = _LEAF_TYPES | {bytes}
_TREE_TYPES = _TREE_LEAVES | {list, dict}
_is_int = int.__instancecheck__  # C-speed filter; bools are ints, and always in range
_is_str = str.__instancecheck__


def _is_container(item: Any) -> bool:
    kind = type(item)
    return kind is list or kind is dict


def _classify(value: Any, json_limit: int | None = None) -> tuple[bool, bool]:
    """``(tree, json)``: what a single C-speed walk over ``value`` proves.

    *tree*: ``value`` is a list or dict made only of ``list``/``dict`` containers
    (keys: None/bool/int/float/str/bytes) and None/bool/int/float/str/bytes leaves
    (exact types), none shared or cyclic, at most :data:`_JSON_MAX_DEPTH` deep — so
    the safe pickler may write it without its memo. A leaf alone is a tree too
    (bytes alone is not: the ``bytes`` codec stores it as is).
    *json*: also what JSON gives back exactly — str keys, no bytes, 64-bit ints —
    and, with ``json_limit``, a JSON text that may fit in ``json_limit`` bytes (the
    walk stops checking once a lower bound of the text's length exceeds it).

    Each container is checked in bulk (the set of its item and key types, the
    min/max of its ints, the lengths of its strings); only containers are walked
    one by one. What only encoding finds (NaN/inf, lone surrogates) is left to
    :meth:`JsonCodec.dumps`, which the codec always runs after this.
    """
    kind = type(value)
    if kind is not list and kind is not dict:
        if kind not in _LEAF_TYPES:
            return False, False
        if kind is int:
            return True, _INT64_MIN <= value <= _INT64_MAX
        return True, kind is not str or json_limit is None or len(value) <= json_limit
    json_ok = True
    length = 0  # a lower bound of the JSON text's length
    stack = [(value, 0)]
    seen: set[int] = set()
    while stack:
        item, depth = stack.pop()
        if id(item) in seen or depth >= _JSON_MAX_DEPTH:  # shared/cyclic: JSON loses identity
            return False, False
        seen.add(id(item))
        is_dict = type(item) is dict
        if json_ok and json_limit is not None:
            # each item and its comma, the brackets; a key's quotes and colon
            length += (5 if is_dict else 2) * len(item) + 1
            if length > json_limit:  # too long for SQL: stop the JSON-only checks
                json_ok = False
        if is_dict:
            children = item.values()
            if item:
                key_types = set(map(type, item))
                if not key_types <= _TREE_LEAVES:
                    return False, False
                if json_ok and key_types != {str}:
                    json_ok = False
                if json_ok and json_limit is not None:
                    length += sum(map(len, item))
        else:
            children = item
        types = set(map(type, children))
        if not types <= _TREE_TYPES:
            return False, False
        if json_ok:
            if bytes in types:
                json_ok = False
            elif int in types:
                ints = list(filter(_is_int, children))
                if min(ints) < _INT64_MIN or max(ints) > _INT64_MAX:
                    json_ok = False
            if json_ok and json_limit is not None:
                if str in types:
                    length += sum(map(len, filter(_is_str, children)))
                if length > json_limit:
                    json_ok = False
        if list in types or dict in types:
            stack.extend((child, depth + 1) for child in filter(_is_container, children))
    return True, json_ok


def _is_plain_json(value: Any) -> bool:
    """True when the *types* in ``value`` survive a JSON round trip unchanged.

    Exactly ``None``/``bool``/``int`` (64-bit)/``float``/``str`` leaves in exactly
    ``list``/``dict`` (str keys) containers, none shared or cyclic, at most
    :data:`_JSON_MAX_DEPTH` deep (:func:`_classify` without a size limit).
    """
    return _classify(value)[1]


class JsonCodec(Codec):
    """Plain data as compact UTF-8 JSON; refuses anything JSON would change.

    Example
    -------
    >>> JsonCodec().accepts((1, 2)), JsonCodec().accepts([1, 2])
    (False, True)
    """

    name = "json"

    def accepts(self, value: Any) -> bool:
        return self.try_dumps(value, JSON_SQL_LIMIT) is not None

    @staticmethod
    def try_dumps(value: Any, limit: int | None = None) -> bytes | None:
        """The JSON bytes of ``value`` if JSON gives it back exactly (types included)
        and, with ``limit``, they are at most ``limit`` bytes long; else None.

        Example
        -------
        >>> JsonCodec.try_dumps({"k": [1, 2.5]}), JsonCodec.try_dumps({"k": (1, 2)})
        (b'{"k":[1,2.5]}', None)
        >>> JsonCodec.try_dumps(list(range(100)), limit=100) is None
        True
        """
        if not _classify(value, limit)[1]:
            return None
        return JsonCodec._dumps_within(value, limit)

    @staticmethod
    def _dumps_within(value: Any, limit: int | None) -> bytes | None:
        try:
            data = JsonCodec.dumps(value)
        except CodecError:  # NaN/inf or a lone surrogate somewhere inside
            return None
        return data if limit is None or len(data) <= limit else None

    @staticmethod
    def dumps(value: Any) -> bytes:
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            return text.encode("utf-8")
        except (ValueError, RecursionError, UnicodeEncodeError) as exc:
            raise CodecError(f"value is not plain JSON: {exc}") from exc

    def encode(self, value: Any, sink: IO[bytes] | ChunkSink) -> None:
        sink.write(self.dumps(value))

    def decode(self, stream: IO[bytes], size: int | None = None) -> Any:
        return json.loads(stream.read())


def _fill(stream: IO[bytes], target: memoryview, short: str) -> None:
    """Read from ``stream`` until ``target`` is full; ``CodecError(short)`` if it ends first."""
    pos, total = 0, len(target)
    while pos < total:
        n = stream.readinto(target[pos:])  # type: ignore[attr-defined]
        if not n:
            raise CodecError(short)
        pos += n


class BytesCodec(Codec):
    """Exactly ``bytes``, stored as is.

    Example
    -------
    >>> BytesCodec().accepts(b"x"), BytesCodec().accepts(bytearray(b"x"))
    (True, False)
    """

    name = "bytes"

    def accepts(self, value: Any) -> bool:
        return type(value) is bytes

    def encode(self, value: Any, sink: IO[bytes] | ChunkSink) -> None:
        sink.write(value)

    def decode(self, stream: IO[bytes], size: int | None = None) -> Any:
        if size is None:
            return stream.read()
        buffer = bytearray(size)
        with memoryview(buffer) as view:
            _fill(stream, view, "stored bytes are shorter than recorded")
        return bytes(buffer)


#: The largest .npy header numpy reads back by default (``max_header_size``).
_NPY_MAX_HEADER = 10000


class NpyCodec(Codec):
    """numpy arrays without object dtype, in ``.npy`` form (never pickled).

    Only used when numpy is already imported by the user's code, so runstore itself
    never imports numpy to store a value.

    Example
    -------
    >>> import numpy as np
    >>> NpyCodec().accepts(np.zeros(3)), NpyCodec().accepts(np.array([None]))
    (True, False)
    """

    name = "npy"

    def accepts(self, value: Any) -> bool:
        np = sys.modules.get("numpy")
        if np is None or type(value) is not np.ndarray or value.dtype.hasobject:
            return False
        if value.dtype.names is not None:  # .npy 1.0/2.0 headers are latin-1
            from numpy.lib import format as npformat

            try:
                repr(npformat.dtype_to_descr(value.dtype)).encode("latin-1")
            except UnicodeEncodeError:
                return False
            # numpy refuses to read back a header over _NPY_MAX_HEADER bytes (hundreds of
            # fields): such arrays go to pickle (test_codec_rules.py::test_npy_header_limit)
            if len(repr(npformat.header_data_from_array_1_0(value))) + 64 > _NPY_MAX_HEADER:
                return False
        return True

    def encode(self, value: Any, sink: IO[bytes] | ChunkSink) -> None:
        import numpy as np
        from numpy.lib import format as npformat

        # accepts() keeps headers under _NPY_MAX_HEADER, so format 1.0 always fits
        npformat.write_array_header_1_0(sink, npformat.header_data_from_array_1_0(value))
        if value.size == 0:
            return
        if value.flags.c_contiguous:
            sink.write(value.reshape(-1).view(np.uint8).data)
        elif value.flags.f_contiguous:
            sink.write(value.T.reshape(-1).view(np.uint8).data)
        else:  # strided view: copy a bounded piece at a time
            step = max(CHUNK_SIZE // max(value.itemsize, 1), 1)
            for piece in np.nditer(
                value, flags=["external_loop", "buffered", "zerosize_ok"], buffersize=step, order="C"
            ):
                sink.write(piece.tobytes("C"))

    def decode(self, stream: IO[bytes], size: int | None = None) -> Any:
        import numpy as np
        from numpy.lib import format as npformat

        version = npformat.read_magic(stream)
        try:
            if version == (1, 0):
                shape, fortran, dtype = npformat.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = npformat.read_array_header_2_0(stream)
            else:
                raise CodecError(f".npy format version {version} is not supported")
        except ValueError as exc:  # a damaged or oversized header
            raise CodecError(f"unreadable .npy header: {exc}") from None
        if dtype.hasobject:
            raise CodecError("refusing an object-dtype .npy payload")
        # The header comes from the file: allocate only what the verified size can hold.
        claimed = math.prod(int(n) for n in shape) * dtype.itemsize
        if size is not None and claimed > size:
            raise CodecError(f"a .npy header claims {claimed} bytes in a stored value of {size} bytes")
        array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        if array.size:
            with memoryview(array.reshape(-1, order="A").view(np.uint8)) as target:
                _fill(stream, target, "stored array is shorter than its header says")
        return array


# ------------------------------------------------------------------ safepickle


class CaughtException:
    """An exception recorded by ``@catch``, with the fields of Metaflow's ``MetaflowExceptionWrapper``.

    ``type`` is ``module.Class``, ``exception`` the message (``str()`` of the original
    exception; also ``message``), ``stacktrace`` the formatted traceback (also
    ``traceback``); ``str()`` gives the traceback. It holds text only, never the live
    exception object (which may not pickle, or need its module to load), and it is not
    an ``Exception`` itself: libraries such as ``tblib`` (installed by Dask) change how
    every exception pickles, and a stored value must not depend on what the writer had
    imported (tests/test_executor_dask.py::test_same_rows_as_a_local_run).

    Stored with the ``safepickle`` codec (plain strings), so a colleague's caught
    exceptions load without ``runstore trust``. Lives here, at the bottom of the
    module ladder, so the safe loader can name it without importing the flow layer;
    ``runstore.flowspec.CaughtException`` is the same class.

    Example
    -------
    >>> err = CaughtException("builtins.ValueError", "bad", "Traceback ...")
    >>> err.type, err.exception, str(err)
    ('builtins.ValueError', 'bad', 'Traceback ...')
    >>> str(CaughtException("builtins.ValueError", "bad")).splitlines()
    ['[no stacktrace]', 'builtins.ValueError: bad']
    """

    def __init__(self, type: str, message: str, traceback: str = "") -> None:
        self.type = type
        self.message = message
        self.traceback = traceback

    def __repr__(self) -> str:
        return f"CaughtException({self.type!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CaughtException) and (self.type, self.message, self.traceback) == (
            other.type, other.message, other.traceback)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return CaughtException, (self.type, self.message, self.traceback)

    @property
    def exception(self) -> str:
        """The message of the caught exception (Metaflow: ``MetaflowExceptionWrapper.exception``)."""
        return self.message

    @property
    def stacktrace(self) -> str | None:
        """The formatted traceback, or None when there is none (Metaflow's ``stacktrace``)."""
        return self.traceback or None

    def __str__(self) -> str:
        if self.traceback:
            return self.traceback
        return f"[no stacktrace]\n{self.type}: {self.message}"


class _Refused(Exception):
    """The safe pickler met a type it does not take (the value goes to cloudpickle)."""


#: A Fraction is stored as its text; longer texts are refused on load (bounded parse).
_FRACTION_TEXT_MAX = 10_000


def _fraction_reduce(value: Any) -> tuple[Any, tuple[Any, ...]]:
    text = str(value)  # a ValueError beyond sys.get_int_max_str_digits(): cloudpickle takes it
    if len(text) > _FRACTION_TEXT_MAX:
        raise _Refused("Fraction too long")
    return type(value), (text,)


def _caught_reduce(value: CaughtException) -> tuple[Any, tuple[Any, ...]]:
    fields = vars(value)
    if fields.keys() != {"type", "message", "traceback"} or any(type(v) is not str for v in fields.values()):
        raise _Refused("CaughtException with other fields")
    return value.__reduce__()


def _ordered_dict_reduce(value: Any) -> tuple[Any, ...]:
    if vars(value):
        raise _Refused("OrderedDict with attributes")
    return type(value), (), None, None, iter(value.items())


def _uuid_reduce(value: Any) -> tuple[Any, tuple[Any, ...]]:
    return type(value), (None, None, None, None, value.int)


def _standard(value: Any) -> Any:
    return NotImplemented  # the type's own reduction: REDUCE of the class with plain arguments


@functools.lru_cache(maxsize=None)
def _safe_tables() -> tuple[dict[type, Callable[[Any], Any]], dict[tuple[str, str], Any]]:
    """(reduction per allowed type for the writer, object per global name for the loader).

    ``decimal`` and ``fractions`` are not imported here (about 5 ms on the run path):
    no Decimal or Fraction can exist before its module is, so the writer looks them
    up in ``sys.modules`` when it meets one (:func:`_late_reducer`), and the loader's
    checking constructors import them when a stored value asks for one.
    """
    import collections
    import datetime
    import pathlib
    import uuid

    def fraction(*args: Any) -> Any:
        if len(args) != 1 or type(args[0]) is not str or len(args[0]) > _FRACTION_TEXT_MAX:
            raise UnsafeValue("a stored Fraction is not a short text")  # Fraction(a, b): gcd of huge ints
        import fractions

        return fractions.Fraction(args[0])

    def decimal_(*args: Any) -> Any:
        if len(args) != 1 or type(args[0]) is not str:  # Decimal(int) of a huge int is quadratic
            raise UnsafeValue("a stored Decimal is not a text")
        import decimal

        return decimal.Decimal(args[0])

    def uuid_(*args: Any) -> Any:
        if len(args) != 5 or args[:4] != (None, None, None, None) or type(args[4]) is not int:
            raise UnsafeValue("a stored UUID is not an integer")
        return uuid.UUID(int=args[4])

    def caught(*args: Any) -> CaughtException:
        if not 2 <= len(args) <= 3 or any(type(a) is not str for a in args):
            raise UnsafeValue("a stored CaughtException is not three texts")
        return CaughtException(*args)

    plain = (complex, bytearray, range, slice, datetime.date, datetime.time, datetime.datetime,
             datetime.timedelta, datetime.timezone)
    reducers: dict[type, Callable[[Any], Any]] = {kind: _standard for kind in plain}
    reducers.update({uuid.UUID: _uuid_reduce, collections.OrderedDict: _ordered_dict_reduce,
                     CaughtException: _caught_reduce})
    paths = (pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.PosixPath)
    for kind in paths:
        reducers[kind] = lambda value: (type(value), (str(value),))
    names: dict[tuple[str, str], Any] = {("builtins", k.__name__): k for k in (complex, range, slice)}
    names.update({("datetime", k.__name__): k for k in plain[4:9]})
    names.update({("decimal", "Decimal"): decimal_, ("fractions", "Fraction"): fraction, ("uuid", "UUID"): uuid_,
                  ("collections", "OrderedDict"): collections.OrderedDict,
                  (CaughtException.__module__, "CaughtException"): caught,
                  (__name__, "_np_scalar"): _np_scalar})
    for kind in paths:  # pathlib became a package in 3.13 (pathlib._local)
        names[("pathlib", kind.__name__)] = names[(kind.__module__, kind.__name__)] = kind
    return reducers, names


def _late_class(kind: Any) -> bool:
    """True for ``decimal.Decimal`` and ``fractions.Fraction`` (when their module is loaded)."""
    decimal = sys.modules.get("decimal")
    if decimal is not None and kind is decimal.Decimal:
        return True
    fractions = sys.modules.get("fractions")
    return fractions is not None and kind is fractions.Fraction


def _late_reducer(kind: Any) -> Callable[[Any], Any] | None:
    """The reduction of a Decimal, Fraction or numpy scalar type (modules only looked up, never imported)."""
    if _late_class(kind):
        return _fraction_reduce if kind.__name__ == "Fraction" else _standard
    numpy = sys.modules.get("numpy")
    if (numpy is not None and isinstance(kind, type) and issubclass(kind, (numpy.number, numpy.bool_))
            and kind.__module__ == "numpy"):
        return _np_scalar_reduce
    return None


#: numpy scalars: bool, signed and unsigned ints, floats and complex of a plain byte order and size.
_NP_SCALAR_DTYPE = re.compile(r"[<>|=][biufc][0-9]{1,2}")


def _np_scalar_reduce(value: Any) -> tuple[Any, tuple[Any, ...]]:
    dtype = value.dtype.str
    if not _NP_SCALAR_DTYPE.fullmatch(dtype):
        raise _Refused(f"numpy scalar of dtype {dtype}")
    return _np_scalar, (dtype, value.tobytes())


def _np_scalar(*args: Any) -> Any:
    """A numpy scalar from its dtype text and raw bytes (the safe loader's constructor for them).

    Example
    -------
    >>> _np_scalar("<f8", b"\\x00\\x00\\x00\\x00\\x00\\x00\\xf8?")
    np.float64(1.5)
    """
    if (len(args) != 2 or type(args[0]) is not str or type(args[1]) is not bytes
            or not _NP_SCALAR_DTYPE.fullmatch(args[0])):
        raise UnsafeValue("a stored numpy scalar is not a plain dtype and its bytes")
    try:
        import numpy as np
    except ImportError:
        raise CodecError("this stored value holds a numpy scalar: install numpy to load it") from None
    dtype = np.dtype(args[0])
    if dtype.itemsize != len(args[1]):
        raise UnsafeValue(f"a stored numpy {args[0]} scalar has {len(args[1])} bytes")
    return np.frombuffer(args[1], dtype=dtype)[0]


def safe_types() -> tuple[type, ...]:
    """The types besides None, bool, int, float, str, bytes, tuple, list, dict, set and
    frozenset that the ``safepickle`` codec stores (exact types, not subclasses).

    Example
    -------
    >>> import decimal
    >>> decimal.Decimal in safe_types(), object in safe_types()
    (True, False)
    """
    import decimal
    import fractions

    return (*_safe_tables()[0], decimal.Decimal, fractions.Fraction)


@functools.lru_cache(maxsize=None)
def _pickler_class() -> type:
    import pickle

    reducers = _safe_tables()[0]
    classes = frozenset(reducers)

    class SafePickler(pickle.Pickler):
        """The standard pickler, refusing every type that is not allowed.

        ``reducer_override`` sees every object except exact None/bool/int/float/
        str/bytes/list/dict/set/frozenset/tuple, which the pickler writes itself;
        the allowed classes themselves pass (written as globals by name).
        """

        def reducer_override(self, obj: Any) -> Any:
            kind = type(obj)
            reduce = reducers.get(kind) or _late_reducer(kind)
            if reduce is not None:
                return reduce(obj)
            if (isinstance(obj, type) and (obj in classes or _late_class(obj))) or obj is _np_scalar:
                return NotImplemented  # an allowed class (or constructor) itself: a global, by name
            raise _Refused(type_name(obj))

    return SafePickler


@functools.lru_cache(maxsize=None)
def _unpickler_class() -> type:
    import pickle

    names = _safe_tables()[1]

    class SafeUnpickler(pickle.Unpickler):
        """The standard unpickler whose globals come from an explicit allow-list only.

        Nothing is imported: a name not in the list raises
        :class:`~runstore.errors.UnsafeValue` (see the "Restricting Globals" section
        of the Python docs on pickle).
        """

        def find_class(self, module: str, name: str) -> Any:
            found = names.get((module, name))
            if found is None:
                raise UnsafeValue(f"the stored value asks for {module}.{name}, which the safe loader does not allow")
            return found

        def persistent_load(self, pid: Any) -> Any:
            raise UnsafeValue("the stored value has a persistent id, which the safe loader does not allow")

    return SafeUnpickler


# Opcodes the safe pickler writes (protocol 5): everything else is refused before
# unpickling bytes runstore did not write. Per opcode: (size of its argument, or a
# negative width of a length prefix; the memory its result may take at most).
_ARG_LEN1, _ARG_LEN4, _ARG_LEN8, _ARG_FRAME = -1, -4, -8, -9
_OPCODES: dict[bytes, tuple[int, int]] = {
    b"\x80": (1, 0),            # PROTO
    b"\x95": (_ARG_FRAME, 0),   # FRAME
    b".": (0, 0),               # STOP
    b"(": (0, 8),               # MARK
    b"0": (0, 0),               # POP
    b"1": (0, 0),               # POP_MARK
    b"N": (0, 8),               # NONE
    b"\x88": (0, 8),            # NEWTRUE
    b"\x89": (0, 8),            # NEWFALSE
    b"J": (4, 40),              # BININT
    b"K": (1, 8),               # BININT1 (cached small ints)
    b"M": (2, 40),              # BININT2
    b"\x8a": (_ARG_LEN1, 64),   # LONG1
    b"\x8b": (_ARG_LEN4, 64),   # LONG4
    b"G": (8, 32),              # BINFLOAT
    b"\x8c": (_ARG_LEN1, 80),   # SHORT_BINUNICODE (up to 4 bytes a character)
    b"X": (_ARG_LEN4, 80),      # BINUNICODE
    b"\x8d": (_ARG_LEN8, 80),   # BINUNICODE8
    b"C": (_ARG_LEN1, 48),      # SHORT_BINBYTES
    b"B": (_ARG_LEN4, 48),      # BINBYTES
    b"\x8e": (_ARG_LEN8, 48),   # BINBYTES8
    b"\x96": (_ARG_LEN8, 72),   # BYTEARRAY8
    b"]": (0, 72),              # EMPTY_LIST
    b"a": (0, 16),              # APPEND
    b"e": (0, 0),               # APPENDS (its items are counted)
    b"}": (0, 240),             # EMPTY_DICT
    b"s": (0, 48),              # SETITEM
    b"u": (0, 0),               # SETITEMS
    b")": (0, 8),               # EMPTY_TUPLE
    b"t": (0, 64),              # TUPLE
    b"\x85": (0, 72),           # TUPLE1
    b"\x86": (0, 80),           # TUPLE2
    b"\x87": (0, 88),           # TUPLE3
    b"\x8f": (0, 232),          # EMPTY_SET
    b"\x90": (0, 0),            # ADDITEMS
    b"\x91": (0, 232),          # FROZENSET
    b"\x93": (0, 8),            # STACK_GLOBAL (the allow-list decides)
    b"R": (0, 240),             # REDUCE (an allowed constructor)
    b"\x94": (0, 16),           # MEMOIZE (memo grows by one)
    b"h": (1, 16),              # BINGET
    b"j": (4, 16),              # LONG_BINGET
}
_OPCODE_TABLE: tuple[tuple[int, int] | None, ...] = tuple(_OPCODES.get(bytes([i])) for i in range(256))

#: Memory a stranger's value may claim: this plus :data:`_MEMORY_PER_BYTE` times its size.
_MEMORY_BASE = 256 << 20
_MEMORY_PER_BYTE = 64


def check_opcodes(data: bytes | bytearray | memoryview) -> None:
    """Refuse a pickle the safe pickler could not have written, before unpickling it.

    Every opcode must be one :class:`SafePickleCodec` writes (no PUT/BINPUT/LONG_BINPUT
    — their index sizes the unpickler's memo table, a 10-byte memory bomb — no
    BUILD, NEWOBJ, INST, OBJ, GLOBAL, persistent ids, extension codes or out-of-band
    buffers), every length must fit in the bytes that follow, the stream must end
    right after its STOP, and the objects it can make must fit in
    ``_MEMORY_BASE + _MEMORY_PER_BYTE * len(data)`` bytes. Raises
    :class:`~runstore.errors.UnsafeValue`. Linear in ``len(data)``, in Python.

    Example
    -------
    >>> import pickle
    >>> check_opcodes(pickle.dumps((1, "a"), protocol=5))
    >>> check_opcodes(b"\\x80\\x05cos\\nsystem\\n.")
    Traceback (most recent call last):
    ...
    runstore.errors.UnsafeValue: the stored value uses pickle opcode 0x63 at byte 2, which the safe loader does not allow
    """
    with memoryview(data) as base, base.cast("B") as view:  # released even when refusing
        _check_view(view)


def _check_view(view: memoryview) -> None:
    table, from_bytes, n, pos, memory = _OPCODE_TABLE, int.from_bytes, len(view), 0, 0
    budget = _MEMORY_BASE + _MEMORY_PER_BYTE * n
    while pos < n:
        entry = table[view[pos]]
        if entry is None:
            raise UnsafeValue(f"the stored value uses pickle opcode {view[pos]:#04x} at byte {pos},"
                              " which the safe loader does not allow")
        arg, cost = entry
        memory += cost
        if arg >= 0:
            if view[pos] == 0x2E:  # STOP
                if pos + 1 != n:
                    raise UnsafeValue(f"the stored value has {n - pos - 1} bytes after its end")
                if memory > budget:
                    raise UnsafeValue(f"the stored value would take more than {budget:,} bytes of memory")
                return
            pos += 1 + arg
            continue
        if arg == _ARG_FRAME:
            if from_bytes(view[pos + 1 : pos + 9], "little") > n - pos - 9:
                raise UnsafeValue("a pickle frame of the stored value is longer than the value")
            pos += 9
            continue
        width = -arg
        if pos + 1 + width > n:
            break
        length = view[pos + 1] if width == 1 else from_bytes(view[pos + 1 : pos + 1 + width], "little")
        if length > n - pos - 1 - width:
            raise UnsafeValue(f"a pickle opcode at byte {pos} claims {length:,} bytes, more than the value holds")
        memory += length
        pos += 1 + width + length
    raise UnsafeValue("the stored value ends without its STOP opcode")


class SafePickleCodec(Codec):
    """Plain values with the standard pickler, read back by a restricted unpickler.

    Takes values made only of None, bool, int, float, complex, str, bytes,
    bytearray, tuple, list, dict, set, frozenset and :func:`safe_types` (exact
    types, any nesting, shared and cyclic containers kept). Loading cannot run
    code: the unpickler's globals come from an explicit allow-list and a
    stranger's bytes are checked opcode by opcode first (:func:`check_opcodes`).
    Large plain lists and dicts are written without the pickler's memo (their
    containers are known not to be shared), the fastest form to write and read.

    Example
    -------
    >>> import datetime, io
    >>> codec = SafePickleCodec()
    >>> value = {(1, 2): {3.5, float("inf")}, "when": datetime.date(2024, 1, 2)}
    >>> codec.decode(io.BytesIO(codec.try_dumps(value))) == value
    True
    >>> codec.try_dumps(lambda: 0) is None
    True
    """

    name = "safepickle"
    streams = False
    marks_trust = True

    def accepts(self, value: Any) -> bool:
        return self.try_dumps(value) is not None

    @staticmethod
    def try_dumps(value: Any) -> bytes | None:
        """The pickle of ``value`` if every object in it is an allowed type, else None."""
        buffer = io.BytesIO()
        try:
            _pickler_class()(buffer, protocol=5).dump(value)
        except MemoryError:
            raise
        except Exception:  # _Refused, RecursionError, an over-long int: cloudpickle's turn
            return None
        return buffer.getvalue()

    def encode(self, value: Any, sink: IO[bytes] | ChunkSink) -> None:
        data = self.try_dumps(value)
        if data is None:
            raise CodecError(f"{type_name(value)} holds a type the safepickle codec does not take")
        sink.write(data)

    @staticmethod
    def encode_tree(value: Any, sink: IO[bytes] | ChunkSink) -> None:
        """Write a plain tree (see :func:`_classify`) straight into ``sink``, without the memo."""
        pickler = _pickler_class()(sink, protocol=5)
        pickler.fast = True  # no memo: the walk proved no container is shared
        pickler.dump(value)

    def decode(self, stream: IO[bytes], size: int | None = None) -> Any:
        if isinstance(stream, io.BytesIO):  # the verified copy in memory: checked in place, no copy
            with stream.getbuffer() as view:
                check_opcodes(view)
            return self._load(stream)
        data = stream.read()
        check_opcodes(data)
        return self._load(io.BytesIO(data))

    def decode_own(self, stream: IO[bytes], size: int | None = None) -> Any:
        return self._load(stream)

    @staticmethod
    def _load(stream: IO[bytes]) -> Any:
        try:
            return _unpickler_class()(stream, fix_imports=False).load()
        except (UnsafeValue, CodecError):
            raise
        except MemoryError:
            raise CodecError("a stored safepickle value needs more memory than is available") from None
        except Exception as exc:
            raise CodecError(f"a stored safepickle value cannot be decoded: {type(exc).__name__}: {exc}") from None


class PickleCodec(Codec):
    """Everything else, with cloudpickle protocol 5. Unsafe to load from strangers.

    Example
    -------
    >>> PickleCodec().safe
    False
    """

    name = "pickle"
    safe = False
    streams = False
    marks_trust = True

    def accepts(self, value: Any) -> bool:
        return True

    def encode(self, value: Any, sink: IO[bytes] | ChunkSink) -> None:
        import cloudpickle

        try:
            cloudpickle.dump(value, sink, protocol=5)
        except Exception as exc:  # pickling can fail in arbitrary user code
            raise CodecError(f"cannot pickle {type_name(value)}: {exc}") from exc

    def decode(self, stream: IO[bytes], size: int | None = None) -> Any:
        import pickle

        return pickle.load(stream)


#: Codecs by name, in the order they are tried.
CODECS: dict[str, Codec] = {
    c.name: c for c in (JsonCodec(), BytesCodec(), NpyCodec(), SafePickleCodec(), PickleCodec())
}


def _decide(value: Any) -> tuple[Codec, bytes | None, bool]:
    """``(codec, its encoding when deciding already made it, tree)`` for ``value``.

    One walk (:func:`_classify`) settles the common cases: small plain JSON is
    JSON (readable in SQL), any other plain list/dict tree is safepickle written
    without the memo (``tree``). Only other values try bytes, npy, then the safe
    pickler (into memory: it may refuse half way), then cloudpickle.
    """
    tree, json_ok = _classify(value, JSON_SQL_LIMIT)
    if json_ok:
        data = JsonCodec._dumps_within(value, JSON_SQL_LIMIT)
        if data is not None:
            return CODECS["json"], data, False
    if tree:
        return CODECS["safepickle"], None, True
    for name in ("bytes", "npy"):
        if CODECS[name].accepts(value):
            return CODECS[name], None, False
    data = SafePickleCodec.try_dumps(value)
    if data is not None:
        return CODECS["safepickle"], data, False
    return CODECS["pickle"], None, False


def choose_codec(value: Any) -> Codec:
    """Return the safest codec that encodes ``value`` exactly (what :func:`encode_value` uses).

    Example
    -------
    >>> choose_codec(float("nan")).name, choose_codec((1, 2)).name
    ('safepickle', 'safepickle')
    >>> choose_codec(b"raw").name, choose_codec(lambda: 0).name
    ('bytes', 'pickle')
    """
    return _decide(value)[0]


def get_codec(name: str) -> Codec:
    """Look a codec up by the name recorded with an artifact.

    Example
    -------
    >>> get_codec("json").name
    'json'
    """
    try:
        return CODECS[name]
    except KeyError:
        raise CodecError(f"unknown encoding {name!r}: written by a newer runstore?") from None


def type_name(value: Any) -> str:
    """The qualified type name shown for an artifact (``dict``, ``numpy.ndarray``).

    Example
    -------
    >>> type_name({}), type_name(1.5)
    ('dict', 'float')
    """
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


# ---------------------------------------------------------------- compression

_SAMPLE = 256 * 1024


_ZSTD = threading.local()  # zstd (de)compressors are reusable but not thread-safe


def encode_value(value: Any, on_chunk: Callable[[str, Any], object]) -> tuple[EncodedBlob, str, str, str | None]:
    """Encode ``value`` with :func:`choose_codec` through a :class:`ChunkSink`.

    Returns ``(blob, codec name, type name, json text or None)``; the JSON text is
    given for JSON values (they are at most :data:`JSON_SQL_LIMIT` bytes). The store and remote
    executors both encode through here, so a value encodes to the same bytes on
    any machine.

    Example
    -------
    >>> blob, codec, kind, text = encode_value([1, 2], lambda key, data: None)
    >>> codec, kind, text, blob.size
    ('json', 'list', '[1,2]', 5)
    """
    sink = ChunkSink(on_chunk)
    json_value = None
    codec, data, tree = _decide(value)  # checked and encoded once, not twice
    if codec.name == "json":
        json_value = data.decode("utf-8")  # type: ignore[union-attr]
    if data is not None:
        sink.write(data)
    elif tree:
        SafePickleCodec.encode_tree(value, sink)
    else:
        codec.encode(value, sink)
    return sink.close(), codec.name, type_name(value), json_value


def _zstd(kind: str) -> Any:
    """This thread's cached ``ZstdCompressor`` (level 1 or 3) or ``ZstdDecompressor``."""
    cached = getattr(_ZSTD, kind, None)
    if cached is None:
        import zstandard

        if kind == "decompress":
            cached = zstandard.ZstdDecompressor()
        else:
            cached = zstandard.ZstdCompressor(level=1 if kind == "sample" else 3)
        setattr(_ZSTD, kind, cached)
    return cached


def compress_chunk(data: bytes | bytearray | memoryview) -> tuple[str, bytes | bytearray | memoryview]:
    """Compress one chunk with zstd unless it does not pay; returns (compression, data).

    A sample of the chunk is compressed first, so incompressible data (random
    floats, already-compressed files) costs almost nothing.

    Example
    -------
    >>> compress_chunk(b"a" * 100000)[0]
    'zstd'
    >>> import os
    >>> compress_chunk(os.urandom(1000))[0]
    'none'
    """
    n = len(data)
    if n < 64:
        return "none", data
    if n > 4 * _SAMPLE:
        sample = _zstd("sample").compress(memoryview(data)[:_SAMPLE])
        if len(sample) > 0.9 * _SAMPLE:
            return "none", data
    packed = _zstd("compress").compress(data)
    if len(packed) >= 0.95 * n:
        return "none", data
    return "zstd", packed


def decompress_chunk(compression: str, data: bytes, raw_size: int) -> bytes:
    """Undo :func:`compress_chunk`, never producing more than ``raw_size`` bytes.

    The stored bytes come from a file someone else may have written, so nothing in
    them is believed: ``raw_size`` must be at most :data:`CHUNK_SIZE`, a zstd frame
    that announces another size is refused before anything is allocated (zstd
    would otherwise allocate what the frame header claims), and the output must be
    exactly ``raw_size`` bytes. Anything else is a :class:`~runstore.errors.CodecError`.

    Example
    -------
    >>> method, packed = compress_chunk(b"b" * 5000)
    >>> decompress_chunk(method, bytes(packed), 5000) == b"b" * 5000
    True
    >>> decompress_chunk(method, bytes(packed), 4000)
    Traceback (most recent call last):
    ...
    runstore.errors.CodecError: a compressed chunk announces 5000 bytes, 4000 recorded
    """
    if not 0 <= raw_size <= CHUNK_SIZE:
        raise CodecError(f"a chunk claims {raw_size} bytes; chunks hold at most {CHUNK_SIZE}")
    if compression == "none":
        if len(data) != raw_size:
            raise CodecError(f"a stored chunk holds {len(data)} bytes, {raw_size} recorded")
        return data
    if compression != "zstd":
        raise CodecError(f"unknown chunk compression {compression!r}")
    import zstandard

    if raw_size == 0:  # max_output_size=0 would mean "no limit"; compress_chunk never makes these
        raise CodecError("a compressed chunk claims 0 bytes")
    try:
        announced = zstandard.frame_content_size(data)
        if announced not in (-1, raw_size):
            raise CodecError(f"a compressed chunk announces {announced} bytes, {raw_size} recorded")
        # With the size in the frame header (checked above) zstd allocates exactly that;
        # without it, max_output_size caps the output.
        out = _zstd("decompress").decompress(data, max_output_size=raw_size)
    except zstandard.ZstdError as exc:
        raise CodecError(f"a compressed chunk cannot be decompressed: {exc}") from exc
    if len(out) != raw_size:
        raise CodecError(f"a compressed chunk holds {len(out)} bytes, {raw_size} recorded")
    return out
