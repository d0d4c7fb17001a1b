"""Codecs, hashing and chunking of artifact values. Pure: no SQL here.

A value is *encoded* by the first codec that accepts it, safest first:

========  ==========================================================  =========
name      accepts                                                     safe to
                                                                      load from
                                                                      strangers
========  ==========================================================  =========
json      None/bool/int (64-bit)/finite float/str, lists and dicts     yes
          of them with str keys, no shared or cyclic containers
bytes     exactly ``bytes``                                           yes
npy       ``numpy.ndarray`` without object dtype (``.npy``, no pickle) yes
pickle    everything else (cloudpickle, protocol 5)                   no
========  ==========================================================  =========

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

import hashlib
import io
import json
import math
import sys
import threading
from dataclasses import dataclass
from typing import IO, Any, Callable, Sequence

from .errors import CodecError

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

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def encode(self, value: Any, sink: IO[bytes] | ChunkSink) -> None:
        raise NotImplementedError

    def decode(self, stream: IO[bytes], size: int | None = None) -> Any:
        raise NotImplementedError


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
_is_int = int.__instancecheck__  # C-speed filter; bools are ints, and always in range


def _is_container(item: Any) -> bool:
    kind = type(item)
    return kind is list or kind is dict


def _is_plain_json(value: Any) -> bool:
    """True when the *types* in ``value`` survive a JSON round trip unchanged.

    Exactly ``None``/``bool``/``int`` (64-bit)/``float``/``str`` leaves in exactly
    ``list``/``dict`` (str keys) containers, none shared or cyclic, at most
    :data:`_JSON_MAX_DEPTH` deep. Each container is checked in bulk at C speed
    (the set of its item types, the min/max of its ints); only containers are
    walked one by one. What only encoding finds (NaN/inf, lone surrogates) is
    left to :meth:`JsonCodec.dumps`, which the codec always runs after this.
    """
    kind = type(value)
    if kind is not list and kind is not dict:
        if kind not in _LEAF_TYPES:
            return False
        return kind is not int or _INT64_MIN <= value <= _INT64_MAX
    stack = [(value, 0)]
    seen: set[int] = set()
    while stack:
        item, depth = stack.pop()
        if id(item) in seen or depth >= _JSON_MAX_DEPTH:  # shared/cyclic: JSON loses identity
            return False
        seen.add(id(item))
        if type(item) is dict:
            if item and set(map(type, item)) != {str}:
                return False
            children = item.values()
        else:
            children = item
        types = set(map(type, children))
        if not types <= _JSON_TYPES:
            return False
        if int in types:
            ints = list(filter(_is_int, children))
            if min(ints) < _INT64_MIN or max(ints) > _INT64_MAX:
                return False
        if list in types or dict in types:
            stack.extend((child, depth + 1) for child in filter(_is_container, children))
    return True


class JsonCodec(Codec):
    """Plain data as compact UTF-8 JSON; refuses anything JSON would change.

    Example
    -------
    >>> JsonCodec().accepts((1, 2)), JsonCodec().accepts([1, 2])
    (False, True)
    """

    name = "json"

    def accepts(self, value: Any) -> bool:
        return self.try_dumps(value) is not None

    @staticmethod
    def try_dumps(value: Any) -> bytes | None:
        """The JSON bytes of ``value`` if JSON gives it back exactly (types included), else None.

        Example
        -------
        >>> JsonCodec.try_dumps({"k": [1, 2.5]}), JsonCodec.try_dumps({"k": (1, 2)})
        (b'{"k":[1,2.5]}', None)
        """
        if not _is_plain_json(value):
            return None
        try:
            return JsonCodec.dumps(value)
        except CodecError:  # NaN/inf or a lone surrogate somewhere inside
            return None

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


class PickleCodec(Codec):
    """Everything else, with cloudpickle protocol 5. Unsafe to load from strangers.

    Example
    -------
    >>> PickleCodec().safe
    False
    """

    name = "pickle"
    safe = False

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
CODECS: dict[str, Codec] = {c.name: c for c in (JsonCodec(), BytesCodec(), NpyCodec(), PickleCodec())}


def choose_codec(value: Any) -> Codec:
    """Return the safest codec that encodes ``value`` exactly.

    Example
    -------
    >>> choose_codec(float("nan")).name
    'pickle'
    >>> choose_codec(b"raw").name
    'bytes'
    """
    for codec in CODECS.values():
        if codec.accepts(value):
            return codec
    raise CodecError(f"no codec for {type_name(value)}")  # pragma: no cover - pickle accepts all


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
    given for JSON values up to :data:`JSON_SQL_LIMIT`. The store and remote
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
    data = JsonCodec.try_dumps(value)  # checked and encoded once, not twice
    if data is not None:
        codec: Codec = CODECS["json"]
        if len(data) <= JSON_SQL_LIMIT:
            json_value = data.decode("utf-8")
        sink.write(data)
    else:
        codec = choose_codec(value)
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
