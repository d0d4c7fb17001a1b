"""The artifact values every artifact benchmark stores, built the same way in both venvs.

Imported by ``benchmarks/bench_blobs.py`` (runstore's venv) and by
``benchmarks/peers/metaflow_artifacts.py`` (the peers venv), so both sides save
byte-for-byte the same Python objects. Needs numpy only.
"""

from __future__ import annotations

import numpy as np

MiB = 1024 * 1024
ARRAY_BYTES = 100 * MiB
DICT_KEYS = 1_000_000
N_SMALL = 1000


def big_array() -> np.ndarray:
    """100 MiB of random float64 (incompressible), seed 0."""
    return np.random.default_rng(0).random(ARRAY_BYTES // 8)


def big_dict() -> dict[str, int]:
    """1,000,000 string keys mapping to ints."""
    return {f"key{i}": i for i in range(DICT_KEYS)}


def small_values(n: int = N_SMALL) -> list[object]:
    """n small artifacts of four kinds: JSON dicts, 512 random bytes, 64-float arrays, 16-float lists."""
    rng = np.random.default_rng(1)
    values: list[object] = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            values.append({"step": i, "loss": float(rng.random()), "name": f"model-{i}", "tags": ["a", "b"]})
        elif kind == 1:
            values.append(rng.bytes(512))
        elif kind == 2:
            values.append(rng.random(64))
        else:
            values.append([float(x) for x in rng.random(16)])
    return values


def make(case: str) -> object:
    """The value of one case: ``array``, ``dict`` or ``small`` (a list of values)."""
    return {"array": big_array, "dict": big_dict, "small": small_values}[case]()


def peak_rss() -> int:
    """Peak resident bytes of this process: VmHWM (starts afresh at exec, unlike ru_maxrss)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
