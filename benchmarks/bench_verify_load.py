"""What hash verification adds to loading a 100 MiB value (SPEC §13.1; "Verification costs").

Run from the repository root (about a minute, needs ~1 GB of RAM and disk)::

    .venv/bin/python benchmarks/bench_verify_load.py --repeat 7 | tee benchmarks/results/bench_verify_load.txt

``Store.load_value`` hashes every byte it decodes against the blob key (all codecs), and
with ``check_chunks`` (pickles, code packages) also each chunk against its chunk key. To
measure what that adds in the same run, each load is timed three ways on the same file:

* ``none``: verification switched off by replacing the module's ``hashlib`` with a stub
  whose digests always match (benchmark only; the library has no such switch);
* ``blob``: the default for json/bytes/npy: one sha256 pass over the value;
* ``blob+chunks``: ``check_chunks=True``, as for pickles and code: a second pass per chunk.

Values: a 100 MiB float64 array (npy, random: stored uncompressed in 7 chunks), the same
bytes as ``bytes``, and a pickled object holding them (decoded from a verified private
copy: in memory up to 16 MiB, in an anonymous temporary file above). Times are medians.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _machine import describe  # noqa: E402

from runstore import Store  # noqa: E402
from runstore.store import _blobs  # noqa: E402

MiB = 1 << 20


class _NoHash:
    """A stand-in for ``hashlib`` whose digests match whatever key they are compared with."""

    class _Digest:
        def update(self, data: Any) -> None:
            pass

        def hexdigest(self) -> "_Equal":
            return _NoHash._Equal()

    class _Equal(str):
        def __eq__(self, other: object) -> bool:
            return True

        def __ne__(self, other: object) -> bool:
            return False

        __hash__ = str.__hash__

    @staticmethod
    def sha256(data: Any = b"") -> "_NoHash._Digest":
        return _NoHash._Digest()


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    array = np.random.default_rng(1).random(100 * MiB // 8)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "verify.db")
        refs = {"npy": store.put_value(array), "bytes": store.put_value(array.tobytes()),
                # a deque is not on the safe codec's allow-list: the cloudpickle path
                "pickle": store.put_value(collections.deque(["weights", array.tobytes()]))}
        store.checkpoint()
        sha = median_ms(lambda: hashlib.sha256(array.data).hexdigest(), args.repeat)
        print(f"machine: {describe()}")
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}")
        print(f"one sha256 pass over 100 MiB: {sha:.0f} ms")
        print("| value (100 MiB) | no verification | blob hash (default) | blob + chunk hashes |")
        print("|---|---|---|---|")
        for name, ref in refs.items():
            load = lambda **kw: store.load_value(ref.blob_key, ref.encoding, **kw)  # noqa: E731
            _blobs.hashlib = _NoHash  # type: ignore[assignment]
            try:
                load()
                off = median_ms(load, args.repeat)
            finally:
                _blobs.hashlib = hashlib
            load()
            blob = median_ms(load, args.repeat) if name != "pickle" else None
            both = median_ms(lambda: load(check_chunks=True), args.repeat)
            blob_text = ("— (pickles always check chunks)" if blob is None
                         else f"{blob:.0f} ms (+{blob - off:.0f} ms)")
            print(f"| {name} | {off:.0f} ms | {blob_text} | {both:.0f} ms (+{both - off:.0f} ms) |")
        store.close()


if __name__ == "__main__":
    main()
