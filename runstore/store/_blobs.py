"""Content-addressed, chunked, compressed blobs inside the store file.

Writing a value: encode it through a :class:`~runstore.codecs.ChunkSink`; each chunk
is looked up by its own sha256 and only compressed and written when new. Chunks of
a large value are written in short transactions as they come (bounded memory); the
blob row and its chunk list become visible in the caller's transaction, together
with the artifact rows that reference them, so a reader never sees half a value.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Generator, Iterable, NamedTuple

from ..codecs import (
    CHUNK_SIZE,
    _fill,
    chunk_list_key,
    is_chunk_list_key,
    compress_chunk,
    decompress_chunk,
    encode_value,
    get_codec,
)
from ..errors import CodecError, NotFound, StoreError, UntrustedArtifact, ValueVanished
from ..trust import trust_mac
from ..util import now
from ._db import Database
from ._trust import is_trusted

__all__ = ["StoredValue", "PreparedValue", "prepare_value", "commit_values", "put_value", "value_size",
           "open_blob", "load_value", "rehash_problems", "chunk_bytes"]


#: Encoded chunks held in memory before they are flushed in their own transaction.
_PENDING_LIMIT = CHUNK_SIZE


#: Chunks at least this large are written and read with incremental blob I/O.
_BLOB_IO_MIN = 1 << 20


#: One-chunk blobs up to this size are fetched together with their chunk list.
_INLINE_READ = 1 << 20


#: Piece size for incremental blob reads and writes.
_IO_PIECE = 4 << 20


#: Verified copies of pickles up to this size are kept in memory, larger ones in a temporary file.
_SPOOL_IN_MEMORY = CHUNK_SIZE


@dataclass(frozen=True)
class StoredValue:
    """Where a value lives: blob key plus what an artifact row records about it.

    Example
    -------
    >>> from runstore import Store
    >>> ref = Store(":memory:").put_value([1, 2, 3])
    >>> ref.encoding, ref.type, ref.json_value
    ('json', 'list', '[1,2,3]')
    """

    blob_key: str
    encoding: str
    size: int
    type: str
    json_value: str | None = None
    #: The ``artifacts`` row this reference was read from (None for a value not yet
    #: bound to a task): a task that keeps it stores a binding to that row, not a copy.
    artifact_id: int | None = field(default=None, compare=False)


@dataclass
class PreparedValue:
    """An encoded value whose blob row is not visible yet (see :func:`prepare_value`)."""

    stored: StoredValue
    chunk_keys: tuple[str, ...]
    pending: list[tuple[str, str, int, Any]] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)


class _ChunkCollector:
    """Receives chunks from a ChunkSink; keeps new ones pending, flushes when large."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pending: list[tuple[str, str, int, Any]] = []
        self.pending_bytes = 0
        self.touched: list[str] = []
        self.seen: set[str] = set()

    def add(self, key: str, data: Any) -> None:
        if key in self.seen:
            return
        self.seen.add(key)
        exists = _chunk_exists(self.db, key)
        if exists and len(data) >= _BLOB_IO_MIN and _reserve_chunk(self.db, key):
            # Not kept in memory (a value may be many of them): reserved instead. Touched now,
            # it is younger than the live run saving it, so gc keeps it (and its old blob) until
            # the commit, which touches it again (store/_gc.py). Pinned by
            # tests/test_reliability_concurrency.py::test_gc_loop_racing_runs_that_reuse_a_collected_value
            self.touched.append(key)
            return
        if exists and len(data) < _BLOB_IO_MIN:
            # A small chunk already stored is kept (uncompressed) all the same: if a concurrent
            # gc takes it before the commit (its blob was unreferenced), the commit's INSERT OR
            # IGNORE puts it back instead of failing the task. Pinned by
            # tests/test_reliability_concurrency.py::test_gc_between_encoding_and_commit_...
            compression, payload = "none", bytes(data)
        else:  # new, or collected between the two looks above: written again
            compression, payload = compress_chunk(data)
        self.pending.append((key, compression, len(data), payload))
        self.pending_bytes += len(payload)
        if self.pending_bytes >= _PENDING_LIMIT:
            # No automatic checkpoint after each 16 MiB: the value's pages are copied
            # into the main file once, at the next commit (one pass, one fsync).
            with self.db.deferred_checkpoint(), self.db.write() as conn:
                _insert_chunks(conn, self.pending, self.touched, self.db.where)
            self.pending, self.touched, self.pending_bytes = [], [], 0


class _Part(NamedTuple):
    """One chunk of a blob, as its rows describe it (checked against the bounds before use)."""

    chunk_id: int
    chunk_key: str
    compression: str
    raw_size: int
    stored_size: int


def _bounds_problem(size: int, parts: list[_Part]) -> str | None:
    """What is impossible about a blob's chunk rows (None when they are within bounds).

    Example
    -------
    >>> _bounds_problem(10, [_Part(1, "k", "none", 10, 10)]) is None
    True
    >>> _bounds_problem(3 << 30, [_Part(1, "k", "zstd", 3 << 30, 270_000)])
    'chunk k… claims 3221225472 bytes (chunks hold at most 16777216)'
    """
    total = 0
    for part in parts:
        raw, stored = part.raw_size, part.stored_size
        if type(raw) is not int or not 0 <= raw <= CHUNK_SIZE:
            return f"chunk {str(part.chunk_key)[:16]}… claims {raw} bytes (chunks hold at most {CHUNK_SIZE})"
        if type(stored) is not int or (stored != raw if part.compression == "none" else stored > raw):
            return f"chunk {str(part.chunk_key)[:16]}… stores {stored} bytes for {raw}"
        total += raw
    if total != size:
        return f"its chunks add up to {total} bytes, not the {size} recorded"
    return None


def _fetch_chunk(conn: sqlite3.Connection, chunk_id: int) -> bytes | None:
    """The stored bytes of one chunk (the single place a whole chunk is read)."""
    row = conn.execute("SELECT data FROM blob_chunks WHERE chunk_id = ?", (chunk_id,)).fetchone()
    return None if row is None else row[0]


def chunk_bytes(compression: object, stored: object, raw_size: object, chunk_key: str) -> bytes:
    """A chunk's raw bytes from its row, checked: within the bounds and hashing to ``chunk_key``.

    The one place a whole chunk row is turned back into bytes and verified (doctor
    ``--deep`` and merge/export use it): ``raw_size`` must be an int of at most
    :data:`~runstore.codecs.CHUNK_SIZE`, decompression never produces more than that
    (:func:`~runstore.codecs.decompress_chunk`), and the bytes must hash to the key.
    Anything else raises :class:`~runstore.errors.CodecError` saying why.

    Example
    -------
    >>> import hashlib
    >>> key = hashlib.sha256(b"abc").hexdigest()
    >>> chunk_bytes("none", b"abc", 3, key)
    b'abc'
    >>> chunk_bytes("none", b"abd", 3, key)
    Traceback (most recent call last):
    ...
    runstore.errors.CodecError: its bytes do not hash to its key: altered after it was written
    """
    if type(raw_size) is not int or not 0 <= raw_size <= CHUNK_SIZE:
        raise CodecError(f"a chunk claims {str(raw_size)[:20]} bytes; chunks hold at most {CHUNK_SIZE}")
    if not isinstance(stored, bytes):
        raise CodecError("its data is not a blob")
    if compression not in ("none", "zstd"):
        raise CodecError(f"unknown chunk compression {str(compression)[:20]!r}")
    data = decompress_chunk(str(compression), stored, raw_size)
    if hashlib.sha256(data).hexdigest() != chunk_key:
        raise CodecError(_ALTERED)
    return data


def _fetch_pieces(conn: sqlite3.Connection, chunk_id: int, offset: int, n: int) -> Generator[bytes, None, None]:
    """``n`` stored bytes of an uncompressed chunk from ``offset``, in pieces of at most
    :data:`_IO_PIECE`, by incremental blob I/O through one handle (closed when done).

    One handle for all the pieces a read asks for: SQLite then follows the chunk's
    overflow-page chain once, where a handle per piece re-walks it from the start of the
    chunk for every piece (half the CPU of a 100 MiB read with 4 KiB pages; docs/storage.md).
    A piece shorter than asked ends the pieces. Raises ``sqlite3.OperationalError``
    ("no such rowid") when the chunk is gone.
    """
    with conn.blobopen("blob_chunks", "data", chunk_id, readonly=True) as handle:
        handle.seek(offset)
        while n > 0:
            piece = handle.read(min(n, _IO_PIECE))
            yield piece
            if len(piece) < min(n, _IO_PIECE):
                return
            n -= len(piece)


_DEEP_HINT = "run `runstore doctor --deep`"


#: Why a blob or chunk fails its hash, in report lines.
_ALTERED = "its bytes do not hash to its key: altered after it was written"


def _altered(where: str, blob_key: str) -> UntrustedArtifact:
    return UntrustedArtifact(
        f"stored value {blob_key[:16]}… in {where} does not match its recorded hash: the file was "
        "altered after it was written; refusing to load it (`runstore doctor --deep` lists what is affected)"
    )


class _VerifiedReader(io.RawIOBase):
    """A read-only file over a blob's chunks that hashes exactly the bytes it hands out.

    Each stored byte is read once: uncompressed chunks piece by piece with
    incremental blob I/O straight into the caller's buffer (a numpy array being
    filled), compressed ones one whole chunk at a time, decompressed with the output
    capped at the chunk's bounded size. Every byte handed out also goes into a
    sha256, and reaching the end raises :class:`UntrustedArtifact` unless it equals
    the blob key, so a decoder's result is only kept when the very bytes it decoded
    were the blob (:meth:`verify_rest` drains what a decoder left unread). With
    ``check_chunks`` each chunk is also hashed against its own key. A blob handle is
    never left open between calls, so an abandoned reader holds no read transaction.
    """

    def __init__(self, db: Database, blob_key: str, parts: list[_Part], inline: bytes | None = None,
                 *, check_chunks: bool = False) -> None:
        super().__init__()
        self._db = db
        self._blob_key = blob_key
        self._parts = parts
        self._index = 0  # current part
        self._offset = 0  # position inside the current part
        self._chunk: memoryview | None = None  # the current part, when read whole
        self._inline = inline
        if is_chunk_list_key(blob_key):
            # Keyed by its chunk list (values of several chunks since #18): the key must be
            # that list's, and each chunk is hashed against its own key; no whole-value hash.
            if chunk_list_key(sum(p.raw_size for p in parts), [p.chunk_key for p in parts]) != blob_key:
                raise _altered(db.where, blob_key)
            self._digest: Any = None
            self._check_chunks = True
        else:
            # Keyed by the sha256 of all its bytes (one chunk; or several, written before #18).
            # A one-chunk blob's chunk key is its blob key: the blob hash checks both.
            self._digest = hashlib.sha256()
            self._check_chunks = check_chunks and len(parts) > 1
        self._chunk_digest = hashlib.sha256()
        self._verified = False

    def readable(self) -> bool:
        return True

    def _missing(self) -> StoreError:
        return StoreError(f"{self._db.where}: a chunk of a stored value is missing; run `runstore doctor`")

    def _damaged(self, exc: Exception) -> StoreError:
        return StoreError(f"{self._db.where}: stored value {self._blob_key[:16]}… is damaged: {exc}; "
                          f"{_DEEP_HINT}")

    def _end_of_part(self) -> None:
        part = self._parts[self._index]
        if self._check_chunks and self._chunk is None and self._chunk_digest.hexdigest() != part.chunk_key:
            raise _altered(self._db.where, self._blob_key)
        self._index, self._offset, self._chunk = self._index + 1, 0, None
        self._chunk_digest = hashlib.sha256()

    def readinto(self, target: Any) -> int:  # type: ignore[override]
        view = memoryview(target).cast("B")
        while self._index < len(self._parts) and self._offset >= self._parts[self._index].raw_size:
            self._end_of_part()
        if self._index >= len(self._parts):
            if not self._verified:
                if self._digest is not None and self._digest.hexdigest() != self._blob_key:
                    raise _altered(self._db.where, self._blob_key)
                self._verified = True
            return 0
        if not len(view):
            return 0
        part = self._parts[self._index]
        n = min(len(view), part.raw_size - self._offset)
        if self._chunk is None and self._inline is None and part.compression == "none" \
                and part.raw_size >= _BLOB_IO_MIN:
            # As much of this chunk as the caller's buffer takes (a numpy array being filled:
            # up to the whole chunk), through one blob handle, each piece hashed as handed out.
            with self._db.read() as conn:
                if hasattr(conn, "blobopen"):
                    got = 0
                    pieces = _fetch_pieces(conn, part.chunk_id, self._offset, n)
                    try:
                        for piece in pieces:
                            view[got:got + len(piece)] = piece
                            if self._digest is not None:
                                self._digest.update(piece)
                            if self._check_chunks:
                                self._chunk_digest.update(piece)
                            got += len(piece)
                    except sqlite3.OperationalError as exc:
                        if "no such rowid" in str(exc):
                            raise self._missing() from exc
                        raise
                    finally:
                        pieces.close()
                    if got != n:
                        raise self._damaged(ValueError(f"a chunk holds fewer than its {part.raw_size} bytes"))
                    self._offset += n
                    return n
        if self._chunk is None:
            self._chunk = memoryview(self._whole_chunk(part))
        view[:n] = self._chunk[self._offset : self._offset + n]
        self._offset += n
        return n

    def _whole_chunk(self, part: _Part) -> bytes:
        """Read (once), decompress (capped) and hash the current part."""
        if self._inline is not None and self._index == 0:  # fetched with the chunk list, same read
            stored, self._inline = self._inline, None
        else:
            with self._db.read() as conn:
                stored = _fetch_chunk(conn, part.chunk_id)
            if stored is None:
                raise self._missing()
        try:
            data = decompress_chunk(part.compression, stored, part.raw_size)
        except CodecError as exc:
            raise self._damaged(exc) from exc
        if self._digest is not None:
            self._digest.update(data)
        if self._check_chunks and hashlib.sha256(data).hexdigest() != part.chunk_key:
            raise _altered(self._db.where, self._blob_key)
        return data

    def verify_rest(self) -> None:
        """Read what is left (hashing it) and check the blob key; raises if it does not match."""
        scratch = bytearray(min(_IO_PIECE, max((p.raw_size for p in self._parts), default=0)) or 1)
        while self.readinto(scratch):
            pass


# ------------------------------------------------------------ writing


def _chunk_exists(db: Database, key: str) -> bool:
    with db.read() as conn:
        return conn.execute("SELECT 1 FROM blob_chunks WHERE chunk_key = ?", (key,)).fetchone() is not None


def _reserve_chunk(db: Database, key: str) -> bool:
    """Touch a stored chunk a value being saved re-uses; False when it is gone (gc took it)."""
    with db.write() as conn:
        return conn.execute("UPDATE blob_chunks SET touched_at = ? WHERE chunk_key = ?", (now(), key)).rowcount > 0


def _insert_chunks(
    conn: sqlite3.Connection, pending: Iterable[tuple[str, str, int, Any]], touched: Iterable[str], where: str
) -> None:
    stamp = now()
    small = []
    for key, compression, raw, data in pending:
        if len(data) < _BLOB_IO_MIN or not hasattr(conn, "blobopen"):
            small.append((key, compression, raw, stamp, data))
            continue
        # Large chunk: reserve the row with zeroblob() and stream the bytes in with
        # incremental blob I/O, so SQLite never holds its own 16 MiB copies of the
        # chunk (binding a parameter would copy it, building the record again).
        cursor = conn.execute(
            "INSERT OR IGNORE INTO blob_chunks(chunk_key, compression, raw_size, touched_at, data) "
            "VALUES (?, ?, ?, ?, zeroblob(?))",
            (key, compression, raw, stamp, len(data)),
        )
        if cursor.rowcount:
            with conn.blobopen("blob_chunks", "data", cursor.lastrowid) as handle:
                view = memoryview(data).cast("B")
                for pos in range(0, len(view), _IO_PIECE):
                    handle.write(view[pos : pos + _IO_PIECE])
    conn.executemany(
        "INSERT OR IGNORE INTO blob_chunks(chunk_key, compression, raw_size, touched_at, data) "
        "VALUES (?, ?, ?, ?, ?)",
        small,
    )
    # Chunks found already stored are not rewritten, only touched: gc keeps chunks
    # re-used since the oldest live run started (see store/_gc.py). If one was
    # collected meanwhile (gc did not see a live run), say so rather than fail on a
    # foreign key: the task's attempt fails with it recorded, and @retry saves again.
    for key in touched:
        if not conn.execute("UPDATE blob_chunks SET touched_at = ? WHERE chunk_key = ?", (stamp, key)).rowcount:
            raise ValueVanished(
                f"{where}: a stored chunk disappeared while a value was being saved "
                "(a concurrent gc?); save the value again"
            )


def prepare_value(db: Database, value: Any) -> PreparedValue:
    """Encode ``value`` and write its large chunks; the blob is not visible yet.

    ``Store.prepare_value`` documents it, with an example.
    """
    collector = _ChunkCollector(db)
    blob, codec_name, kind, json_value = encode_value(value, collector.add)
    stored = StoredValue(blob.key, codec_name, blob.size, kind, json_value)
    return PreparedValue(stored, blob.chunk_keys, collector.pending, collector.touched)


def commit_values(conn: sqlite3.Connection, prepared: Iterable[PreparedValue], where: str = "the store") -> None:
    """Make prepared values visible, inside the caller's write transaction.

    ``Store.commit_values`` documents it, with an example.
    """
    stamp = now()
    for item in prepared:
        _insert_chunks(conn, item.pending, item.touched, where)
        key = item.stored.blob_key
        inserted = conn.execute(
            "INSERT OR IGNORE INTO blobs(blob_key, size, n_chunks, created_at, json_value) VALUES (?, ?, ?, ?, ?)",
            (key, item.stored.size, len(item.chunk_keys), stamp, item.stored.json_value),
        ).rowcount
        if inserted:
            conn.executemany(
                "INSERT INTO blob_parts(blob_key, seq, chunk_key) VALUES (?, ?, ?)",
                [(key, seq, chunk) for seq, chunk in enumerate(item.chunk_keys)],
            )
        else:
            # Re-use counts as a write for gc (its rule, store/_gc.py): a live run may
            # hold this value by reference only (a foreach split) while it is unreferenced.
            # Pinned by tests/test_reliability_concurrency.py::test_gc_keeps_a_reused_value_...
            conn.execute("UPDATE blobs SET created_at = ? WHERE blob_key = ? AND created_at < ?",
                         (stamp, key, stamp))
            if item.stored.json_value is not None:  # the same bytes stored before under another encoding
                conn.execute("UPDATE blobs SET json_value = ? WHERE blob_key = ? AND json_value IS NULL",
                             (item.stored.json_value, key))
        if get_codec(item.stored.encoding).marks_trust:  # pickle: may load; safepickle: skip the check
            conn.execute(
                "INSERT OR IGNORE INTO blob_trust(blob_key, mac) VALUES (?, ?)", (key, trust_mac(key))
            )
        item.pending = []
        item.touched = []


def put_value(db: Database, value: Any) -> StoredValue:
    """Store ``value`` as a blob (once per distinct encoding) and return its reference.

    ``Store.put_value`` documents it, with an example.
    """
    prepared = prepare_value(db, value)
    with db.write() as conn:
        commit_values(conn, [prepared], db.where)
    return prepared.stored

# ------------------------------------------------------------ reading


def _blob_parts(db: Database, blob_key: str) -> tuple[int, list[_Part], bytes | None]:
    """Size, chunk list and, for a small one-chunk blob, its stored bytes: one query.

    The rows come from the file and are checked before anything is allocated
    from them: every chunk holds at most :data:`~runstore.codecs.CHUNK_SIZE` bytes,
    stores no more than that (uncompressed: exactly its size), and the chunks add
    up to the blob's size. So a size computed here bounds every later allocation.
    """
    with db.read() as conn:
        rows = conn.execute(
            "SELECT b.size, b.n_chunks, c.chunk_id, p.chunk_key, c.compression, c.raw_size,"
            " length(c.data),"
            f" CASE WHEN b.n_chunks = 1 AND c.raw_size <= {_INLINE_READ}"
            f" AND length(c.data) <= {_INLINE_READ} THEN c.data END"
            " FROM blobs b LEFT JOIN blob_parts p ON p.blob_key = b.blob_key"
            " LEFT JOIN blob_chunks c ON c.chunk_key = p.chunk_key"
            " WHERE b.blob_key = ? ORDER BY p.seq",
            (blob_key,),
        ).fetchall()
    if not rows:
        raise NotFound(f"no stored value with key {blob_key[:16]}… in {db.where}")
    size, n_chunks = rows[0][0], rows[0][1]
    if len(rows) != n_chunks or any(row[2] is None for row in rows):
        raise StoreError(
            f"{db.where}: chunks of stored value {blob_key[:16]}… are missing; run `runstore doctor`"
        )
    parts = [_Part(*row[2:7]) for row in rows]
    problem = _bounds_problem(size, parts)
    if problem:
        raise StoreError(f"{db.where}: stored value {blob_key[:16]}… is damaged: {problem};"
                         f" {_DEEP_HINT}")
    return size, parts, rows[0][7]


def value_size(db: Database, blob_key: str) -> int:
    """The size of a stored value's encoding, as its chunks bound it.

    ``Store.value_size`` documents it, with an example.
    """
    return _blob_parts(db, blob_key)[0]


def _reader(db: Database, blob_key: str, *, check_chunks: bool = False) -> tuple[int, _VerifiedReader]:
    size, parts, inline = _blob_parts(db, blob_key)
    return size, _VerifiedReader(db, blob_key, parts, inline, check_chunks=check_chunks)


def open_blob(db: Database, blob_key: str) -> IO[bytes]:
    """A binary file over a stored blob's encoded bytes (no decoding, no trust needed).

    ``Store.open_blob`` documents it, with an example.
    """
    _, reader = _reader(db, blob_key)
    return io.BufferedReader(reader, buffer_size=1 << 20)


def _verified_copy(reader: _VerifiedReader, size: int) -> IO[bytes]:
    """A private copy of a blob whose bytes have all been checked against its key.

    Up to :data:`_SPOOL_IN_MEMORY` in memory, larger ones in an anonymous temporary
    file (unlinked at once, mode 0600: no one else can change it).
    """
    if reader._inline is not None:  # small, one chunk: already in memory, fetched with its list
        data = reader._whole_chunk(reader._parts[0])
        reader._chunk, reader._offset = memoryview(data), len(data)
        reader.verify_rest()
        return io.BytesIO(data)
    if size <= _SPOOL_IN_MEMORY:
        buffer = bytearray(size)
        with memoryview(buffer) as view:
            _fill(reader, view, "stored value is shorter than recorded")
        reader.verify_rest()
        return io.BytesIO(buffer)
    import tempfile  # only for pickles over 16 MiB: not on the start-up path

    spool = tempfile.TemporaryFile(prefix="runstore-verified-")
    try:
        piece = bytearray(_IO_PIECE)
        with memoryview(piece) as view:
            while n := reader.readinto(view):
                spool.write(view[:n])
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def load_value(db: Database, blob_key: str, encoding: str, *, check_chunks: bool = False,
               max_size: int | None = None) -> Any:
    """Decode a stored value. Pickles load only when :func:`~runstore.store._trust.is_trusted`.

    ``Store.load_value`` documents it, with an example.
    """
    codec = get_codec(encoding)
    if not codec.safe and not is_trusted(db, blob_key):
        raise UntrustedArtifact(
            f"a pickled value in {db.where} was written by someone else; loading it could run "
            f"their code. If you trust this file, run: runstore trust {db.where}"
        )
    # Hash what you decode (SPEC §13.1): the bytes are read once, hashed as they are
    # read, and the value is only returned when they match the key. A pickle (or
    # code about to run) is decoded from a private verified copy, never from a
    # second read of the file. Safe codecs decode while the bytes stream in and the
    # result is dropped on a mismatch (decoding them cannot run code).
    # Pinned by tests/test_security_blobs.py::test_chunk_read_twice_*.
    size, reader = _reader(db, blob_key, check_chunks=check_chunks or not codec.safe)
    if max_size is not None and size > max_size:
        raise CodecError(f"stored value {blob_key[:16]}… is {size} bytes, "
                         f"more than the {max_size} asked for")
    try:
        if codec.streams:
            stream: IO[bytes] = io.BufferedReader(reader, buffer_size=1 << 20)
            value = codec.decode(stream, size)
            reader.verify_rest()
            return value
        # safepickle: a value this reader wrote (its MAC) skips the opcode check that a
        # stranger's bytes get; either way only the verified private copy is decoded.
        own = codec.marks_trust and (not codec.safe or is_trusted(db, blob_key))
        with _verified_copy(reader, size) as copy:
            return codec.decode_own(copy, size) if own else codec.decode(copy, size)
    except (CodecError, NotFound, StoreError, UntrustedArtifact):
        raise
    except Exception as exc:
        raise CodecError(f"cannot decode stored {encoding} value {blob_key[:16]}…: {exc}") from exc

# ------------------------------------------------------------ doctor --deep


def _users_of(conn: sqlite3.Connection, blob_keys: Iterable[str], limit: int = 5) -> str:
    """``used by F/1/start/3.model, code package 2 …`` for a report line."""
    keys = list(dict.fromkeys(blob_keys))
    marks = ", ".join("?" * len(keys))
    users = [f"{pathspec}.{name}" for pathspec, name in conn.execute(
        "SELECT f.name || '/' || r.run_number || '/' || s.name || '/' || t.task_id, a.name"
        " FROM artifacts a JOIN tasks t ON t.task_id = a.task_id JOIN steps s ON s.step_id = t.step_id"
        " JOIN runs r ON r.run_id = t.run_id JOIN flows f ON f.flow_id = r.flow_id"
        f" WHERE a.blob_key IN ({marks}) ORDER BY 1, 2 LIMIT ?", (*keys, limit + 1))]
    users += [f"code package {code_id}" for (code_id,) in conn.execute(
        f"SELECT code_id FROM code_packages WHERE blob_key IN ({marks}) ORDER BY 1 LIMIT ?",
        (*keys, limit + 1))]
    if not users:
        return "used by no run"
    more = " …" if len(users) > limit else ""
    return "used by " + ", ".join(users[:limit]) + more


def rehash_problems(db: Database, progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Re-hash every chunk and every blob; one line per mismatch (``runstore doctor --deep``).

    ``Store.rehash_problems`` documents it, with an example.
    """
    problems: list[str] = []
    bad_chunks: dict[str, str] = {}
    with db.read() as conn:
        chunks = conn.execute("SELECT chunk_id, chunk_key, compression, raw_size FROM blob_chunks"
                              " ORDER BY chunk_id").fetchall()
        # A blob of one chunk keyed by the blob's own key, of the blob's size, is checked
        # by checking that chunk; every other blob is streamed and hashed whole.
        multi = conn.execute(
            "SELECT b.blob_key FROM blobs b WHERE NOT (b.n_chunks = 1 AND EXISTS (SELECT 1"
            " FROM blob_parts p JOIN blob_chunks c ON c.chunk_key = p.chunk_key"
            " WHERE p.blob_key = b.blob_key AND p.seq = 0"
            " AND p.chunk_key = b.blob_key AND c.raw_size = b.size)) ORDER BY b.blob_key").fetchall()
    total = len(chunks) + len(multi)
    for done, (chunk_id, key, compression, raw_size) in enumerate(chunks, 1):
        with db.read() as conn:
            stored = _fetch_chunk(conn, chunk_id)
        try:
            if stored is None:
                raise CodecError("it vanished while being checked")
            chunk_bytes(compression, stored, raw_size, key)
        except CodecError as exc:
            bad_chunks[key] = str(exc)
        del stored
        if progress is not None:
            progress(done, total)
    for key, reason in bad_chunks.items():
        with db.read() as conn:
            blobs = [row[0] for row in conn.execute("SELECT DISTINCT blob_key FROM blob_parts"
                                                    " WHERE chunk_key = ?", (key,))]
            users = _users_of(conn, blobs) if blobs else "used by no blob"
        problems.append(f"chunk {key[:16]}… is damaged: {reason}; {users}")
    for done, (blob_key,) in enumerate(multi, len(chunks) + 1):
        why: str | None = None
        try:
            _, reader = _reader(db, blob_key)  # a chunk-list key is checked against its list here
            # Every chunk was re-hashed above: a value keyed by its chunk list is checked by
            # that; one keyed by the sha256 of all its bytes is streamed and hashed whole.
            if not is_chunk_list_key(blob_key) and not any(part.chunk_key in bad_chunks for part in reader._parts):
                reader.verify_rest()
        except UntrustedArtifact:
            why = _ALTERED
        except StoreError as exc:
            if "are missing" in str(exc):  # the plain doctor reports missing chunks already
                why = None
            else:
                why = str(exc).split(" is damaged: ", 1)[-1].removesuffix(f"; {_DEEP_HINT}")
        if why:
            with db.read() as conn:
                users = _users_of(conn, [blob_key])
            problems.append(f"blob {blob_key[:16]}… is damaged: {why}; {users}")
        if progress is not None:
            progress(done, total)
    return problems
