"""Whose pickles this user loads: the trust rows of a store (SPEC §3).

A pickle loads only when ``blob_trust`` holds ``HMAC(this user's secret, blob_key)``
(or, for a file this user cannot write, their home does: :mod:`runstore.trust`).
Writing a pickle records the writer's MAC; ``runstore trust FILE`` (:func:`trust_all`)
records the reader's for every pickle in the file. Nothing here unpickles.

Example
-------
>>> from runstore import Store
>>> store = Store(":memory:")
>>> task = store.create_task(store.create_run("F", user="anne").run_id, "start")
>>> store.start_attempt(task, 0)
>>> ref = store.put_value(object())      # a pickle: its writer trusts it
>>> store.finish_attempt(task, 0, "succeeded", artifacts={"obj": ref})
>>> is_trusted(store, ref.blob_key), untrusted_count(store), trust_all(store)
(True, 0, 1)
"""

from __future__ import annotations

from ..codecs import CODECS
from ..errors import NotAStoreError, StoreError
from ..trust import trust_in_home, trust_mac, trusted_in_home
from ..util import config_dir
from ._db import Database, placeholders

__all__ = ["is_trusted", "trust_all", "untrusted_count"]

#: Encodings whose decoding can run code (pickles): only these need trust.
UNSAFE_ENCODINGS = tuple(name for name, codec in CODECS.items() if not codec.safe)

_PICKLED_BLOBS = (f"SELECT DISTINCT a.blob_key FROM artifacts a JOIN blobs b ON b.blob_key = a.blob_key"
                  f" WHERE a.encoding IN ({placeholders(len(UNSAFE_ENCODINGS))})")


def is_trusted(db: Database, blob_key: str) -> bool:
    """Whether this user wrote or trusted the blob (only matters for pickles)."""
    mac = trust_mac(blob_key)
    with db.read() as conn:
        row = conn.execute("SELECT 1 FROM blob_trust WHERE blob_key = ? AND mac = ?", (blob_key, mac)).fetchone()
    # Trust of a file this user could not write lives in their home (runstore/trust.py).
    return row is not None or (db.readonly and mac in trusted_in_home(db.uuid))


def trust_all(db: Database) -> int:
    """Record this user's trust for every pickled value in the store; returns how many.

    On a store opened read-only nothing is written to the file: the MACs go to
    this user's home, under the store's UUID.
    """
    if db.readonly:
        with db.read() as conn:
            keys = [row[0] for row in conn.execute(_PICKLED_BLOBS, UNSAFE_ENCODINGS)]
        try:
            trust_in_home(db.uuid, keys)
        except ValueError as exc:
            raise NotAStoreError(f"{db.where}: its store UUID is damaged ({exc})") from None
        except OSError as exc:
            raise StoreError(f"cannot record trust in {config_dir()}: {exc.strerror or exc}") from None
        return len(keys)
    with db.write() as conn:
        keys = [row[0] for row in conn.execute(_PICKLED_BLOBS, UNSAFE_ENCODINGS)]
        conn.executemany("INSERT OR IGNORE INTO blob_trust(blob_key, mac) VALUES (?, ?)",
                         [(key, trust_mac(key)) for key in keys])
    return len(keys)


def untrusted_count(db: Database) -> int:
    """How many distinct pickled values this user would be refused (never unpickles)."""
    with db.read() as conn:
        keys = [row[0] for row in conn.execute(
            f"SELECT DISTINCT blob_key FROM artifacts WHERE encoding IN ({placeholders(len(UNSAFE_ENCODINGS))})",
            UNSAFE_ENCODINGS)]
    return sum(not is_trusted(db, key) for key in keys)
