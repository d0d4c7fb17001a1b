"""Content-addressed, chunked, compressed blobs inside the store file.

Writing a value: encode it through a :class:`~runstore.blobs.ChunkSink`; each chunk
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
from typing import IO, Any, Iterable

from ..blobs import (
    CHUNK_SIZE,
    JSON_SQL_LIMIT,
    ChunkSink,
    EncodedBlob,
    JsonCodec,
    choose_codec,
    compress_chunk,
    decompress_chunk,
    get_codec,
    type_name,
)
from ..errors import CodecError, NotFound, StoreError, UntrustedArtifact
from ..trust import trust_mac, trusted_in_home
from ..util import now

__all__ = ["StoredValue", "PreparedValue", "BlobsMixin"]

#: Encoded chunks held in memory before they are flushed in their own transaction.
_PENDING_LIMIT = CHUNK_SIZE

#: Chunks at least this large are written and read with incremental blob I/O.
_BLOB_IO_MIN = 1 << 20

#: One-chunk blobs up to this size are fetched together with their chunk list.
_INLINE_READ = 1 << 20

#: Piece size for incremental blob reads and writes.
_IO_PIECE = 4 << 20


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


@dataclass
class PreparedValue:
    """An encoded value whose blob row is not visible yet (see :meth:`BlobsMixin.prepare_value`)."""

    stored: StoredValue
    chunk_keys: tuple[str, ...]
    pending: list[tuple[str, str, int, Any]] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)


class _ChunkCollector:
    """Receives chunks from a ChunkSink; keeps new ones pending, flushes when large."""

    def __init__(self, store: "BlobsMixin") -> None:
        self.store = store
        self.pending: list[tuple[str, str, int, Any]] = []
        self.pending_bytes = 0
        self.touched: list[str] = []
        self.seen: set[str] = set()

    def add(self, key: str, data: Any) -> None:
        if key in self.seen:
            return
        self.seen.add(key)
        if self.store._chunk_exists(key):
            if len(data) >= _BLOB_IO_MIN:
                self.touched.append(key)  # checked again at commit
                return
            # A small chunk already stored is kept (uncompressed) all the same: if a concurrent
            # gc takes it before the commit (its blob was unreferenced), the commit's INSERT OR
            # IGNORE puts it back instead of failing the task. Pinned by
            # tests/test_reliability_concurrency.py::test_gc_between_encoding_and_commit_...
            compression, payload = "none", bytes(data)
        else:
            compression, payload = compress_chunk(data)
        self.pending.append((key, compression, len(data), payload))
        self.pending_bytes += len(payload)
        if self.pending_bytes >= _PENDING_LIMIT:
            # No automatic checkpoint after each 16 MiB: the value's pages are copied
            # into the main file once, at the next commit (one pass, one fsync).
            with self.store.deferred_checkpoint(), self.store.write() as conn:
                self.store._insert_chunks(conn, self.pending, self.touched)
            self.pending, self.touched, self.pending_bytes = [], [], 0


class _BlobReader(io.RawIOBase):
    """A read-only file over a blob's chunks.

    Uncompressed chunks are read piece by piece with incremental blob I/O, straight
    into the caller's buffer (a numpy array being filled); compressed ones are
    fetched and decompressed one chunk at a time. A blob handle is never left open
    between calls, so an abandoned reader holds no read transaction.
    """

    def __init__(self, store: "BlobsMixin", parts: list[tuple[int, str, int]]) -> None:
        super().__init__()
        self._store = store
        self._parts = parts
        self._index = 0  # current part
        self._offset = 0  # position inside the current part
        self._chunk: memoryview | None = None  # decompressed current part, when compressed

    def readable(self) -> bool:
        return True

    def _missing(self) -> StoreError:
        return StoreError(f"{self._store.where}: a chunk of a stored value is missing; run `runstore doctor`")

    def readinto(self, target: Any) -> int:  # type: ignore[override]
        view = memoryview(target).cast("B")
        while self._index < len(self._parts) and self._offset >= self._parts[self._index][2]:
            self._index, self._offset, self._chunk = self._index + 1, 0, None
        if self._index >= len(self._parts) or not len(view):
            return 0
        chunk_id, compression, raw_size = self._parts[self._index]
        n = min(len(view), raw_size - self._offset)
        if compression == "none" and raw_size >= _BLOB_IO_MIN:
            n = min(n, _IO_PIECE)
            with self._store.read() as conn:
                if not hasattr(conn, "blobopen"):
                    return self._readinto_chunk(view, n, chunk_id, compression, raw_size)
                try:
                    with conn.blobopen("blob_chunks", "data", chunk_id, readonly=True) as handle:
                        handle.seek(self._offset)
                        piece = handle.read(n)
                except sqlite3.OperationalError as exc:
                    if "no such rowid" in str(exc):
                        raise self._missing() from exc
                    raise
            view[: len(piece)] = piece
            n = len(piece)
        else:
            return self._readinto_chunk(view, n, chunk_id, compression, raw_size)
        self._offset += n
        return n

    def _readinto_chunk(self, view: memoryview, n: int, chunk_id: int, compression: str, raw_size: int) -> int:
        if self._chunk is None:
            with self._store.read() as conn:
                row = conn.execute("SELECT data FROM blob_chunks WHERE chunk_id = ?", (chunk_id,)).fetchone()
            if row is None:
                raise self._missing()
            self._chunk = memoryview(decompress_chunk(compression, row[0], raw_size))
        view[:n] = self._chunk[self._offset : self._offset + n]
        self._offset += n
        return n


class BlobsMixin:
    """Store methods that save and load values as blobs. Mixed into ``Store``."""

    # provided by Database
    where: str
    write: Any
    read: Any
    deferred_checkpoint: Any

    # ------------------------------------------------------------ writing

    def _chunk_exists(self, key: str) -> bool:
        with self.read() as conn:
            return conn.execute("SELECT 1 FROM blob_chunks WHERE chunk_key = ?", (key,)).fetchone() is not None

    def _insert_chunks(
        self, conn: sqlite3.Connection, pending: Iterable[tuple[str, str, int, Any]], touched: Iterable[str]
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
        # re-used since the oldest live run started (see store/_admin.py). If one was
        # collected meanwhile, say so rather than fail on a foreign key.
        for key in touched:
            if not conn.execute("UPDATE blob_chunks SET touched_at = ? WHERE chunk_key = ?", (stamp, key)).rowcount:
                raise StoreError(
                    f"{self.where}: a stored chunk disappeared while a value was being saved "
                    "(a concurrent gc?); save the value again"
                )

    def prepare_value(self, value: Any) -> PreparedValue:
        """Encode ``value`` and write its large chunks; the blob is not visible yet.

        Pass the result to :meth:`commit_values` (or to the runtime's attempt
        commit) inside a write transaction to make it visible atomically with the
        rows that use it. Memory stays bounded by about two chunks plus the value.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> prepared = store.prepare_value({"a": 1})
        >>> with store.write() as conn:
        ...     store.commit_values(conn, [prepared])
        >>> store.load_value(prepared.stored.blob_key, "json")
        {'a': 1}
        """
        codec = choose_codec(value)
        collector = _ChunkCollector(self)
        sink = ChunkSink(collector.add)
        json_value = None
        if isinstance(codec, JsonCodec):
            data = codec.dumps(value)
            if len(data) <= JSON_SQL_LIMIT:
                json_value = data.decode("utf-8")
            sink.write(data)
        else:
            codec.encode(value, sink)
        blob: EncodedBlob = sink.close()
        stored = StoredValue(blob.key, codec.name, blob.size, type_name(value), json_value)
        return PreparedValue(stored, blob.chunk_keys, collector.pending, collector.touched)

    def commit_values(self, conn: sqlite3.Connection, prepared: Iterable[PreparedValue]) -> None:
        """Make prepared values visible, inside the caller's write transaction."""
        stamp = now()
        for item in prepared:
            self._insert_chunks(conn, item.pending, item.touched)
            key = item.stored.blob_key
            inserted = conn.execute(
                "INSERT OR IGNORE INTO blobs(blob_key, size, n_chunks, created_at) VALUES (?, ?, ?, ?)",
                (key, item.stored.size, len(item.chunk_keys), stamp),
            ).rowcount
            if inserted:
                conn.executemany(
                    "INSERT INTO blob_parts(blob_key, seq, chunk_key) VALUES (?, ?, ?)",
                    [(key, seq, chunk) for seq, chunk in enumerate(item.chunk_keys)],
                )
            else:
                # Re-use counts as a write for gc (its rule, store/_admin.py): a live run may
                # hold this value by reference only (a foreach split) while it is unreferenced.
                # Pinned by tests/test_reliability_concurrency.py::test_gc_keeps_a_reused_value_...
                conn.execute("UPDATE blobs SET created_at = ? WHERE blob_key = ? AND created_at < ?",
                             (stamp, key, stamp))
            if not get_codec(item.stored.encoding).safe:
                conn.execute(
                    "INSERT OR IGNORE INTO blob_trust(blob_key, mac) VALUES (?, ?)", (key, trust_mac(key))
                )
            item.pending = []
            item.touched = []

    def put_value(self, value: Any) -> StoredValue:
        """Store ``value`` as a blob (once per distinct encoding) and return its reference.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> a = store.put_value(list(range(10)))
        >>> b = store.put_value(list(range(10)))
        >>> a.blob_key == b.blob_key
        True
        """
        prepared = self.prepare_value(value)
        with self.write() as conn:
            self.commit_values(conn, [prepared])
        return prepared.stored

    # ------------------------------------------------------------ reading

    def _blob_parts(self, blob_key: str) -> tuple[int, list[tuple[int, str, int]], bytes | None]:
        """Size, chunk list and, for a small one-chunk blob, its stored bytes: one query."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT b.size, b.n_chunks, c.chunk_id, c.compression, c.raw_size,"
                f" CASE WHEN b.n_chunks = 1 AND c.raw_size <= {_INLINE_READ} THEN c.data END"
                " FROM blobs b LEFT JOIN blob_parts p ON p.blob_key = b.blob_key"
                " LEFT JOIN blob_chunks c ON c.chunk_key = p.chunk_key"
                " WHERE b.blob_key = ? ORDER BY p.seq",
                (blob_key,),
            ).fetchall()
        if not rows:
            raise NotFound(f"no stored value with key {blob_key[:16]}… in {self.where}")
        size, n_chunks = rows[0][0], rows[0][1]
        parts = [(chunk_id, compression, raw) for _, _, chunk_id, compression, raw, _ in rows]
        if len(parts) != n_chunks or any(part[0] is None for part in parts) or sum(p[2] for p in parts) != size:
            raise StoreError(
                f"{self.where}: chunks of stored value {blob_key[:16]}… are missing; run `runstore doctor`"
            )
        inline = rows[0][5]
        if inline is not None:
            inline = decompress_chunk(parts[0][1], inline, parts[0][2])
        return size, parts, inline

    def _stream(self, parts: list[tuple[int, str, int]], inline: bytes | None) -> IO[bytes]:
        if inline is not None:
            return io.BytesIO(inline)
        return io.BufferedReader(_BlobReader(self, parts), buffer_size=1 << 20)

    def open_blob(self, blob_key: str) -> IO[bytes]:
        """A binary file over a stored blob's encoded bytes (no decoding, no trust needed).

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> ref = store.put_value(b"hello")
        >>> store.open_blob(ref.blob_key).read()
        b'hello'
        """
        _, parts, inline = self._blob_parts(blob_key)
        return self._stream(parts, inline)

    def is_trusted(self, blob_key: str) -> bool:
        """Whether this user wrote or trusted the blob (only matters for pickles).

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> store.is_trusted(store.put_value(object()).blob_key)
        True
        """
        mac = trust_mac(blob_key)
        with self.read() as conn:
            row = conn.execute("SELECT 1 FROM blob_trust WHERE blob_key = ? AND mac = ?", (blob_key, mac)).fetchone()
        # Trust of a file this user could not write lives in their home (runstore/trust.py).
        return row is not None or (self.readonly and mac in trusted_in_home(self.uuid))

    def _verify_content(self, blob_key: str, parts: list[tuple[int, str, int]], inline: bytes | None) -> None:
        # Trust is a MAC of the blob *key*; a file's author could keep a trusted key
        # (and its MAC row, copied from a store the reader shared) but swap the
        # content. So a pickle is unpickled only after its bytes hash to its key.
        # Pinned by tests/test_trust.py::test_swapped_content_under_a_trusted_key_is_refused.
        digest = hashlib.sha256()
        if inline is not None:
            digest.update(inline)
        else:
            reader = _BlobReader(self, parts)
            buffer = bytearray(1 << 20)
            while n := reader.readinto(buffer):
                digest.update(memoryview(buffer)[:n])
        if digest.hexdigest() != blob_key:
            raise UntrustedArtifact(
                f"a pickled value in {self.where} does not match its recorded hash: the file was "
                f"altered after it was written; refusing to load it"
            )

    def load_value(self, blob_key: str, encoding: str) -> Any:
        """Decode a stored value. Pickles load only when :meth:`is_trusted`.

        Raises
        ------
        UntrustedArtifact
            For a pickled value this user neither wrote nor trusted.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> ref = store.put_value((1, "two"))
        >>> store.load_value(ref.blob_key, ref.encoding)
        (1, 'two')
        """
        codec = get_codec(encoding)
        if not codec.safe and not self.is_trusted(blob_key):
            raise UntrustedArtifact(
                f"a pickled value in {self.where} was written by someone else; loading it could run "
                f"their code. If you trust this file, run: runstore trust {self.where}"
            )
        size, parts, inline = self._blob_parts(blob_key)
        if not codec.safe:
            self._verify_content(blob_key, parts, inline)
        stream = self._stream(parts, inline)
        try:
            return codec.decode(stream, size)
        except (CodecError, NotFound, StoreError):
            raise
        except Exception as exc:
            raise CodecError(f"cannot decode stored {encoding} value {blob_key[:16]}…: {exc}") from exc
