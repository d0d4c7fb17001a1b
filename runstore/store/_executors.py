"""Committing values encoded elsewhere (a remote executor's worker): verify, then prepare.

A task run on another machine returns its artifacts already encoded, as the chunks
:func:`runstore.codecs.encode_value` cut. Before anything reaches the file, every chunk
is hashed against its key and the whole value against its blob key (and its size);
then the chunks go through the same collector as a locally encoded value, so the
rows written are the ones a local worker would have written.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

from ..codecs import CHUNK_SIZE, chunk_list_key, is_chunk_list_key
from ..errors import StoreError
from ._blobs import PreparedValue, StoredValue, _ChunkCollector
from ._db import Database

__all__ = ["prepare_encoded"]


def prepare_encoded(store: Database, stored: StoredValue, chunks: Iterable[tuple[str, bytes]]) -> PreparedValue:
    """A :class:`PreparedValue` from chunks encoded elsewhere, after checking every hash.

    Raises ``StoreError`` (nothing written) when a chunk or the value does not hash
    to its key, or the sizes disagree.

    Example
    -------
    >>> import hashlib
    >>> from runstore import Store
    >>> store = Store(":memory:")
    >>> key = hashlib.sha256(b"[1]").hexdigest()
    >>> ref = StoredValue(key, "json", 3, "list", "[1]")
    >>> prepared = prepare_encoded(store, ref, [(key, b"[1]")])
    >>> with store.write() as conn:
    ...     store.commit_values(conn, [prepared])
    >>> store.load_value(key, "json")
    [1]
    """
    listed = is_chunk_list_key(stored.blob_key)  # keyed by its chunk list (#18): no whole-value hash
    whole = hashlib.sha256()
    size = 0
    keys: list[str] = []
    collector = _ChunkCollector(store)
    for chunk_key, data in chunks:
        if len(data) > CHUNK_SIZE or hashlib.sha256(data).hexdigest() != chunk_key:
            raise StoreError(f"a chunk of value {stored.blob_key[:16]}… sent by a worker does not match its key")
        if not listed:
            whole.update(data)
        size += len(data)
        keys.append(chunk_key)
        collector.add(chunk_key, data)
    expected = chunk_list_key(size, keys) if listed else whole.hexdigest()
    if expected != stored.blob_key or size != stored.size:
        raise StoreError(f"value {stored.blob_key[:16]}… sent by a worker does not match its key")
    return PreparedValue(stored, tuple(keys), collector.pending, collector.touched)
