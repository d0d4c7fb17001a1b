"""Save and load a 1,000,000-key plain dict through a file store (issue #18, SPEC §11).

Run from the repository root (about half a minute)::

    python benchmarks/bench_big_dict.py --repeat 5 | tee benchmarks/results/bench_big_dict.txt

Values: ``{"k0": 0.5, "k1": 1.5, ...}`` (str keys, float values) and a mixed one whose
values cycle through int, float, str, None, bool and a short list. Each is saved with
``Store.put_value`` (JSON plainness check, encoding, hashing, compression, commit) and
loaded with ``Store.load_value`` (read, decompress, verify, ``json.loads``); also the time
of the plainness type check alone (``codecs._is_plain_json``, before ``json.dumps``). Times are medians of ``--repeat``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runstore import Store  # noqa: E402
from runstore.codecs import _is_plain_json  # noqa: E402


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.keys
    mixed_cycle = [1, 2.5, "s", None, True, [1, 2]]
    values = {
        "floats": {f"k{i}": i + 0.5 for i in range(n)},
        "mixed": {f"k{i}": mixed_cycle[i % 6] if i % 6 != 5 else [i, i] for i in range(n)},
    }
    print(f"{n:,}-key dicts, median of {args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "bench.db"))
        for name, value in values.items():
            check = _median(lambda: _is_plain_json(value), args.repeat)
            refs = []
            save = _median(lambda: refs.append(store.put_value(value)), args.repeat)
            ref = refs[-1]
            assert ref.encoding == "json"
            load = _median(lambda: store.load_value(ref.blob_key, ref.encoding), args.repeat)
            assert store.load_value(ref.blob_key, ref.encoding) == value
            print(f"{name:8s} check {check:6.3f} s   save {save:6.3f} s   load {load:6.3f} s")


if __name__ == "__main__":
    main()
