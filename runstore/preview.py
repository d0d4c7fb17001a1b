"""Safe previews of artifacts: never unpickle a value this user did not write or trust.

* ``json``: decoded (JSON decoding runs no code) when at most 1 MiB; strings and numbers
  shown as such, containers pretty-printed and cut at 20,000 characters.
* ``bytes``: the length and the first 256 bytes.
* ``npy``: shape, dtype and a summary (min, max, mean) for arrays up to 64 MiB, decoded
  with the npy codec (no pickle); only the header for larger ones.
* ``safepickle``: decoded (the restricted loader runs no code and checks a stranger's
  bytes first) when at most 16 MiB, shown with :func:`short_repr` (bounded however
  deep or shared the value is); no trust needed.
* ``pickle``: *not trusted* with the ``runstore trust FILE`` hint, unless this user wrote
  or trusted it; a trusted DataFrame shows its head, anything else its ``repr``.

Example
-------
>>> from runstore import Store, Task, namespace
>>> store = Store(":memory:")
>>> run = store.create_run("F", user="anne")
>>> task_id = store.create_task(run.run_id, "start")
>>> store.start_attempt(task_id, 0)
>>> store.finish_attempt(task_id, 0, "succeeded", artifacts={"x": store.put_value({"a": 1})})
>>> _ = namespace(None)
>>> preview(store, Task(f"F/1/start/{task_id}", store=store)["x"]).kind
'json'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import RunstoreError
from .util import short_repr

if TYPE_CHECKING:
    from .client import DataArtifact
    from .store import Store

__all__ = ["Preview", "preview", "short_repr"]

_JSON_MAX = 1 << 20
_BYTES_MAX = 1 << 16
_ARRAY_MAX = 64 << 20
_PICKLE_MAX = 64 << 20
_SAFEPICKLE_MAX = 16 << 20
_TEXT_MAX = 20_000
@dataclass
class Preview:
    """What the task page shows for one artifact.

    ``kind``: ``json``, ``text``, ``number``, ``bytes``, ``array``, ``frame``,
    ``object``, ``untrusted``, ``large`` or ``error``. ``text`` is plain text (the
    template escapes it); ``table`` is ``(columns, rows)`` for a DataFrame head.
    """

    kind: str
    text: str = ""
    note: str = ""
    table: tuple[list[str], list[list[str]]] | None = None
    facts: dict[str, str] = field(default_factory=dict)


def _cut(text: str, limit: int = _TEXT_MAX) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit:,} more characters)"


def preview(store: "Store", artifact: "DataArtifact") -> Preview:
    """A safe preview of ``artifact`` (see the module docstring for what each encoding shows)."""
    try:
        return _preview(store, artifact)
    except RunstoreError as exc:
        return Preview("error", note=f"cannot preview: {exc}")
    except Exception as exc:  # a damaged value must not break the page
        return Preview("error", note=f"cannot preview: {type(exc).__name__}: {exc}")


def _preview(store: "Store", artifact: "DataArtifact") -> Preview:
    encoding, size = artifact.encoding, artifact.size
    if encoding == "json":
        if size > _JSON_MAX:
            return Preview("large", note=f"JSON value of {size:,} bytes: too large to preview")
        value = artifact.data
        if isinstance(value, str):
            return Preview("text", text=_cut(value))
        if isinstance(value, (int, float, bool)) or value is None:
            return Preview("number", text=json.dumps(value))
        return Preview("json", text=_cut(json.dumps(value, indent=2)))
    if encoding == "bytes":
        if size > _BYTES_MAX:
            with store.open_blob(artifact.sha) as handle:
                head = handle.read(256)
        else:
            head = bytes(artifact.data)[:256]
        return Preview("bytes", text=repr(head) + (" …" if size > 256 else ""), facts={"length": f"{size:,} bytes"})
    if encoding == "npy":
        return _array(store, artifact)
    if encoding == "safepickle":
        if size > _SAFEPICKLE_MAX:
            return Preview("large", note=f"value of {size:,} bytes: too large to preview")
        value = store.load_value(artifact.sha, encoding, max_size=_SAFEPICKLE_MAX)
        return Preview("object", text=short_repr(value))
    if encoding == "pickle":
        if not store.is_trusted(artifact.sha):
            return Preview("untrusted", note=(
                f"not trusted: a pickled {artifact.type} written by someone else; loading it could run "
                f"their code. If you trust this file, run: runstore trust {store.where}"))
        if size > _PICKLE_MAX:
            return Preview("large", note=f"pickled value of {size:,} bytes: too large to preview")
        value = artifact.data
        frame = _frame_head(value)
        if frame is not None:
            return frame
        return Preview("object", text=_cut(repr(value), 5000))
    return Preview("error", note=f"unknown encoding {encoding!r}")


def _array(store: "Store", artifact: "DataArtifact") -> Preview:
    import numpy as np

    if artifact.size > _ARRAY_MAX:
        from numpy.lib import format as npy

        with store.open_blob(artifact.sha) as handle:
            version = npy.read_magic(handle)
            shape, fortran, dtype = (npy.read_array_header_1_0(handle) if version == (1, 0)
                                     else npy.read_array_header_2_0(handle))
        return Preview("array", note="too large to summarise", facts={"shape": str(shape), "dtype": str(dtype)})
    value = artifact.data
    facts = {"shape": str(value.shape), "dtype": str(value.dtype)}
    if value.size and np.issubdtype(value.dtype, np.number) and not np.issubdtype(value.dtype, np.complexfloating):
        facts.update(min=repr(value.min().item()), max=repr(value.max().item()),
                     mean=f"{float(value.mean()):.6g}")
    text = np.array2string(value, threshold=50, edgeitems=3, max_line_width=100)
    return Preview("array", text=_cut(text, 5000), facts=facts)


def _frame_head(value: Any) -> Preview | None:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is in the test extra
        return None
    if not isinstance(value, pd.DataFrame):
        return None
    head = value.head(10)
    columns = [str(c) for c in head.columns]
    rows = [[str(i)] + [str(v) for v in row] for i, row in zip(head.index, head.itertuples(index=False))]
    return Preview("frame", table=(["", *columns], rows),
                   facts={"shape": f"{value.shape[0]:,} rows × {value.shape[1]} columns"})
