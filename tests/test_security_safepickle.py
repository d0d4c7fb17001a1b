"""The safepickle codec's restricted loader on hostile bytes (SPEC §13.1, §13.3; docs/security.md §1).

Every attack is a file built by hand: runstore writes a real store, then the test plants the
hostile pickle with the `sqlite3` module as the sender of a file would — under its correct
sha256 key, so the content check passes and only the loader stands between the bytes and the
victim. Each pickle below is checked to be real (plain `pickle.loads` in a child runs its code
or blows its memory), then the victim's load must raise `UnsafeValue` (or `CodecError` for an
allowed constructor refusing its arguments), leave no marker file, and stay within its memory.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import pickle
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runstore import Store
from runstore.codecs import CHUNK_SIZE, CaughtException, SafePickleCodec, check_opcodes
from runstore.errors import CodecError, RunstoreError, UnsafeValue, UntrustedArtifact
from runstore.store import _blobs

from helpers import invoke_cli
from storefill import add_run
from test_security_blobs import GiB, artifact_key, assert_one_line_error, edit, run_limited

PROTO = b"\x80\x05"


def s(text: str) -> bytes:
    """SHORT_BINUNICODE of ``text``."""
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def stack_global(module: str, name: str) -> bytes:
    return s(module) + s(name) + b"\x93"


def call(module: str, name: str, *args: bytes) -> bytes:
    """A protocol-5 pickle calling module.name(*args) with REDUCE (only allowed opcodes)."""
    return stack_global(module, name) + b"(" + b"".join(args) + b"tR"


def marker_code(marker: Path) -> str:
    return f"import pathlib; pathlib.Path({str(marker)!r}).write_text('pwned')"


def hostile_pickles(marker: Path) -> dict[str, bytes]:
    """Each a pickle that plain pickle.loads runs code with (or bombs memory with)."""
    code = marker_code(marker)
    shell = f"touch {marker}"
    return {
        # protocol 0/1 text GLOBAL of os.system: refused by the opcode check
        "global-os-system": b"cos\nsystem\n(V" + shell.encode() + b"\ntR.",
        # only opcodes the safe pickler writes: refused by the allow-list (find_class)
        "stack-global-exec": PROTO + call("builtins", "exec", s(code)) + b".",
        "stack-global-eval": PROTO + call("builtins", "eval", s(f"exec({code!r})")) + b".",
        "getattr-of-allowed-class": PROTO + stack_global("builtins", "getattr") + b"(" + stack_global(
            "collections", "OrderedDict") + s("fromkeys") + b"tR" + b"(" + s("ab") + b"tR.",
        "os-system-by-reduce": PROTO + call("os", "system", s(shell)) + b".",
        "subprocess": PROTO + call("subprocess", "check_call", s("sh") + s("-c") + s(shell) + b"\x87") + b".",
        # INST and OBJ make instances of a class named in the stream
        "inst": b"(V" + shell.encode() + b"\nios\nsystem\n.",
        "obj": PROTO + b"(" + stack_global("os", "system") + s(shell) + b"o.",
        # BUILD on an allowed object: __setstate__/__dict__ updates
        "build-on-allowed": PROTO + call("collections", "OrderedDict") + b"}" + s("__class__") + s("x") + b"sb.",
        # NEWOBJ of an allowed class
        "newobj": PROTO + stack_global("collections", "OrderedDict") + b")\x81.",
        # persistent ids (text and binary)
        "persid": b"P" + shell.encode() + b"\n.",
        "binpersid": PROTO + s(shell) + b"Q.",
        # copyreg extension codes name a global by number
        "ext1": PROTO + b"\x82\x01.",
        "ext2": PROTO + b"\x83\x01\x00.",
        "ext4": PROTO + b"\x84\x01\x00\x00\x00.",
        # memo bombs: PUT indexes size the unpickler's memo table (a 10-byte pickle, 16 GiB touched)
        "long-binput-bomb": PROTO + b"N" + b"r" + struct.pack("<I", 2**30) + b".",
        "put-bomb": b"Np1073741824\n.",
        "binput": PROTO + b"Nq\x05.",
        # lengths claiming far more than the value holds
        "binbytes8-3gib": PROTO + b"\x8e" + struct.pack("<Q", 3 * GiB) + b"abc.",
        "bytearray8-3gib": PROTO + b"\x96" + struct.pack("<Q", 3 * GiB) + b"abc.",
        "frame-3gib": PROTO + b"\x95" + struct.pack("<Q", 3 * GiB) + b"N.",
        # out-of-band buffers
        "next-buffer": PROTO + b"\x97.",
        # an allowed constructor with arguments it must refuse
        "decimal-of-huge-int": PROTO + call("decimal", "Decimal", b"\x8b" + struct.pack("<I", 4) + b"\xff" * 4) + b".",
        "fraction-of-two-ints": PROTO + call("fractions", "Fraction", b"K\x01K\x03") + b".",
        "fraction-huge-text": PROTO + call("fractions", "Fraction", b"X" + struct.pack("<I", 20000) + b"1" * 20000)
        + b".",
        "uuid-of-a-text": PROTO + call("uuid", "UUID", s("12345678123456781234567812345678")) + b".",
        "caught-exception-of-a-list": PROTO + call("runstore.codecs", "CaughtException", b"]" + s("m")) + b".",
        "numpy-object-dtype": PROTO + call("runstore.codecs", "_np_scalar", s("|O8") + b"C\x08" + b"\0" * 8) + b".",
        "numpy-wrong-size": PROTO + call("runstore.codecs", "_np_scalar", s("<f8") + b"C\x03abc") + b".",
        "numpy-dtype-not-text": PROTO + call("runstore.codecs", "_np_scalar", b"K\x01" + b"C\x08" + b"\0" * 8) + b".",
        # bytes after the end: a second pickle hidden behind STOP
        "trailing-pickle": PROTO + b"N." + b"cos\nsystem\n(V" + shell.encode() + b"\ntR.",
        # no STOP at all
        "no-stop": PROTO + b"N",
    }


#: What plain ``pickle.loads`` does with each (in a child): runs code, or at least is not refused by
#: pickle itself. The ones pickle itself refuses still must not get past our loader.
RUNS_CODE = {"global-os-system", "stack-global-exec", "stack-global-eval", "os-system-by-reduce", "subprocess",
             "inst", "obj"}


def plant(db: Path, name: str, data: bytes, encoding: str = "safepickle") -> str:
    """Point artifact ``name`` at ``data`` under its true sha256 key, as a sender would."""
    key = hashlib.sha256(data).hexdigest()
    edit(db,
         ("INSERT OR IGNORE INTO blob_chunks(chunk_key, compression, raw_size, touched_at, data)"
          " VALUES (?, 'none', ?, '2024-01-01T00:00:00', ?)", (key, len(data), data)),
         ("INSERT OR IGNORE INTO blobs(blob_key, size, n_chunks, created_at)"
          " VALUES (?, ?, 1, '2024-01-01T00:00:00')", (key, len(data))),
         ("INSERT OR IGNORE INTO blob_parts(blob_key, seq, chunk_key) VALUES (?, 0, ?)", (key, key)),
         ("UPDATE artifacts SET blob_key = ?, encoding = ?, size = ? WHERE name = ?", (key, encoding, len(data), name)))
    return key


def start_task(db: Path) -> str:
    with sqlite3.connect(db) as raw:
        (task_id,) = raw.execute("SELECT t.task_id FROM tasks t JOIN steps s ON s.step_id = t.step_id"
                                 " WHERE s.name = 'start'").fetchone()
    return f"F/1/start/{task_id}"


@pytest.fixture
def senders_file(tmp_path: Path) -> Path:
    """A store written by someone else: a run whose `model` is a (genuine) safepickle value."""
    db = tmp_path / "received.db"
    store = Store(db)
    add_run(store, model=(1, {2, 3}))
    store.close()
    assert artifact_key(db, "model")[1] == "safepickle"
    edit(db, ("DELETE FROM blob_trust", ()))  # the sender's MACs mean nothing to the victim
    return db


def test_the_hostile_pickles_are_real(tmp_path: Path) -> None:
    # The control: plain pickle runs the code of the ones marked, each in its own child.
    for name in sorted(RUNS_CODE):
        marker = tmp_path / f"control-{name}"
        data = hostile_pickles(marker)[name]
        subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
                       input=data, capture_output=True, timeout=60, cwd=tmp_path)
        assert marker.exists(), name


@pytest.mark.parametrize("name", sorted(hostile_pickles(Path("/x"))))
def test_hostile_safepickle_is_refused_and_runs_nothing(senders_file: Path, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "PWNED"
    key = plant(senders_file, "model", hostile_pickles(marker)[name])
    store = Store(senders_file)
    with pytest.raises(UnsafeValue) as info:
        store.load_value(key, "safepickle")
    assert "\n" not in str(info.value)
    assert not marker.exists()
    # the client, the UI preview and the dump say so too, and run nothing either
    from runstore import Run, namespace
    from runstore.preview import preview

    namespace(None)
    artifact = Run("F/1", store=store)["start"].task["model"]
    with pytest.raises(RunstoreError):
        artifact.data
    shown = preview(store, artifact)
    assert shown.kind == "error" and "cannot preview" in shown.note
    store.close()
    assert not marker.exists()


def test_show_of_a_hostile_value_is_one_line_and_runs_nothing(senders_file: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    plant(senders_file, "model", hostile_pickles(marker)["stack-global-exec"])
    result = invoke_cli("show", start_task(senders_file), db=senders_file)
    assert result.exit_code == 0, result.output
    assert "refused" in result.output and "model" in result.output
    proc = subprocess.run([sys.executable, "-m", "runstore", "--db", str(senders_file), "show", start_task(senders_file), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("name", ["long-binput-bomb", "put-bomb", "binbytes8-3gib", "bytearray8-3gib", "frame-3gib",
                                  "empty-sets"])
def test_memory_bombs_are_refused_within_a_memory_limit(senders_file: Path, tmp_path: Path, name: str) -> None:
    # 4 Mi empty sets in one list: a 4 MiB pickle that unpickles to ~1 GiB (232 bytes a set).
    data = (PROTO + b"](" + b"\x8f" * (4 << 20) + b"e.") if name == "empty-sets" else hostile_pickles(tmp_path)[name]
    key = plant(senders_file, "model", data)
    code = ("import sys; from runstore import Store; from runstore.errors import UnsafeValue\n"
            "try:\n    Store(sys.argv[1]).load_value(sys.argv[2], 'safepickle')\n"
            "except UnsafeValue as exc:\n    print('refused:', exc)\n")
    proc = run_limited([sys.executable, "-c", code, str(senders_file), key], tmp_path, limit=GiB)
    assert proc.returncode == 0 and "refused:" in proc.stdout, (proc.stdout, proc.stderr)
    assert "MemoryError" not in proc.stderr
    cli = run_limited([sys.executable, "-m", "runstore", "--db", str(senders_file), "show", start_task(senders_file)],
                      tmp_path, limit=GiB)
    assert cli.returncode == 0 and "MemoryError" not in cli.stderr, (cli.stdout, cli.stderr)
    assert "refused" in cli.stdout or name == "empty-sets"  # 4 MiB: listed, not previewed


def test_the_plain_unpickler_would_take_the_memory(tmp_path: Path) -> None:
    # The control for the memo bomb: CPython's own unpickler (3.10-3.13) sizes its memo table from
    # the PUT index and touches it; under a 1 GiB limit it fails with MemoryError, unlimited it
    # would touch 16 GiB. Our loader refuses before unpickling (test above).
    data = hostile_pickles(tmp_path)["long-binput-bomb"]
    code = "import pickle, sys\ntry:\n    pickle.loads(sys.stdin.buffer.read())\nexcept MemoryError:\n    print('MemoryError')\n"
    import resource

    proc = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=60,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (GiB, GiB)))
    assert b"MemoryError" in proc.stdout


def test_a_deeply_nested_or_shared_value_loads_and_previews_in_bounded_time(senders_file: Path,
                                                                             tmp_path: Path) -> None:
    # Allowed opcodes only: a list nested 200,000 deep, and a "billion laughs" of 2**200 leaves
    # through BINGET of the memo. Loading makes them (no recursion in the unpickler); showing
    # them must not recurse or walk them whole.
    n = 200_000
    deep = PROTO + b"]" * n + b"a" * (n - 1) + b"."
    laughs = PROTO + b"]\x94" + b"".join(b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86\x94" for i in range(200)) + b"."
    from runstore import Run, namespace
    from runstore.preview import preview

    for data in (deep, laughs):
        plant(senders_file, "model", data)
        store = Store(senders_file)
        namespace(None)
        artifact = Run("F/1", store=store)["start"].task["model"]
        value = artifact.data  # built without recursion, no trust needed
        assert isinstance(value, (list, tuple))
        shown = preview(store, artifact)
        assert shown.kind == "object" and len(shown.text) < 6000
        store.close()
        proc = subprocess.run([sys.executable, "-m", "runstore", "--db", str(senders_file), "show",
                               start_task(senders_file)],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        del value


def test_a_strangers_value_is_checked_and_the_readers_own_is_not(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # The reader's own values carry the reader's MAC (blob_trust): loaded at C speed without the
    # opcode check. Without it (a colleague's file) every load is checked first.
    store = Store(tmp_path / "mine.db")
    ref = store.put_value({"k": (1, 2), "when": datetime.date(2024, 1, 2)})
    assert ref.encoding == "safepickle" and store.is_trusted(ref.blob_key)
    calls: list[int] = []
    real = SafePickleCodec.decode

    def counting(self: SafePickleCodec, stream: Any, size: Any = None) -> Any:
        calls.append(1)
        return real(self, stream, size)

    monkeypatch.setattr(SafePickleCodec, "decode", counting)
    assert store.load_value(ref.blob_key, "safepickle") == {"k": (1, 2), "when": datetime.date(2024, 1, 2)}
    assert calls == []
    with store.write() as conn:
        conn.execute("DELETE FROM blob_trust")
    assert store.load_value(ref.blob_key, "safepickle") == {"k": (1, 2), "when": datetime.date(2024, 1, 2)}
    assert calls == [1]
    store.close()


def test_a_co_writer_swapping_the_bytes_of_an_own_value_is_refused_before_decoding(tmp_path: Path) -> None:
    # The MAC lets the reader's own bytes skip the opcode check; a co-writer who swaps them (key
    # kept) is caught by the content hash of the private copy, before the unpickler sees a byte.
    db = tmp_path / "mine.db"
    store = Store(db)
    add_run(store, model=(1, "x" * 100))
    store.close()
    key, encoding = artifact_key(db, "model")
    marker = tmp_path / "PWNED"
    evil = hostile_pickles(marker)["long-binput-bomb"]
    with sqlite3.connect(db) as raw:
        (raw_size,) = raw.execute("SELECT raw_size FROM blob_chunks WHERE chunk_key = ?", (key,)).fetchone()
    edit(db, ("UPDATE blob_chunks SET data = ?, compression = 'none' WHERE chunk_key = ?",
              (evil + b"\0" * (raw_size - len(evil)), key)))
    store = Store(db)
    assert encoding == "safepickle" and store.is_trusted(key)
    with pytest.raises(UntrustedArtifact, match="altered"):
        store.load_value(key, "safepickle")
    store.close()


def test_check_opcodes_accepts_what_the_safe_pickler_writes() -> None:
    values = [(1, 2), {1: {2, 3}}, frozenset({1}), [b"x" * 300, bytearray(b"y" * 70000)], 2**1000, -(2**70),
              float("nan"), datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
              CaughtException("builtins.ValueError", "bad", "tb"), "x" * (CHUNK_SIZE // 64), ["é" * 300] * 3]
    shared: list[Any] = [1]
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    values += [[shared, shared, (shared,)], cyclic]
    for value in values:
        data = SafePickleCodec.try_dumps(value)
        assert data is not None, value
        check_opcodes(data)
    sink = io.BytesIO()  # a plain tree, written without the memo
    SafePickleCodec.encode_tree({"a": [1, 2.5, "x", None, True, b"b", 2**70], 3: {}, None: [[]] * 0}, sink)
    check_opcodes(sink.getvalue())


def test_memory_budget_is_proportional_to_the_value() -> None:
    check_opcodes(PROTO + b"](" + b"}" * 100_000 + b"e.")  # 100k empty dicts: fine
    with pytest.raises(UnsafeValue, match="more than .* bytes of memory"):
        check_opcodes(PROTO + b"](" + b"\x8f" * (4 << 20) + b"e.")
    with pytest.raises(UnsafeValue, match="claims"):
        check_opcodes(PROTO + b"X" + struct.pack("<I", 10) + b"abc.")


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "int64", "int8", "uint16", "bool_", "complex128"])
def test_numpy_scalars_are_safe_and_exact(senders_file: Path, dtype: str) -> None:
    # Results such as sklearn's accuracy are numpy scalars: a colleague reads them without trust.
    import numpy as np

    value = {"acc": getattr(np, dtype)(1), "nan": np.float64("nan"), "big_endian": np.dtype(">f8").type(2.5)}
    store = Store(senders_file)
    ref = store.put_value(value)
    with store.write() as conn:
        conn.execute("DELETE FROM blob_trust")
    back = store.load_value(ref.blob_key, ref.encoding)
    assert ref.encoding == "safepickle" and type(back["acc"]) is getattr(np, dtype) and back["acc"] == 1
    assert type(back["nan"]) is np.float64 and np.isnan(back["nan"]) and back["big_endian"] == 2.5
    store.close()


def test_the_loader_never_imports(tmp_path: Path) -> None:
    # A module nobody imported stays unimported: find_class only looks names up.
    code = ("import sys, io; from runstore.codecs import SafePickleCodec\n"
            "data = b'\\x80\\x05' + b'\\x8c\\x0chttp.cookies\\x8c\\x0cSimpleCookie\\x93)R.'\n"
            "try:\n    SafePickleCodec().decode(io.BytesIO(data))\nexcept Exception as exc:\n"
            "    print(type(exc).__name__)\nprint('http.cookies' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["UnsafeValue", "False"], proc.stderr


def test_flow_dump_of_hostile_and_billion_laughs_values_is_bounded_and_runs_nothing(senders_file: Path,
                                                                                   tmp_path: Path) -> None:
    from click.testing import CliRunner

    from runstore.cli.flow import make_cli
    from runstore.runtime.runner import load_flow

    flow = tmp_path / "f.py"
    flow.write_text("from runstore import FlowSpec, step\n\nclass F(FlowSpec):\n    @step\n    def start(self):\n"
                    "        self.next(self.end)\n\n    @step\n    def end(self):\n        pass\n")
    cli = make_cli(load_flow(flow))
    marker = tmp_path / "PWNED"
    laughs = PROTO + b"]\x94" + b"".join(b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86\x94" for i in range(200)) + b"."
    for data, expect in ((hostile_pickles(marker)["stack-global-exec"], "Unsafe value"), (laughs, "((((((…), (…))")):
        plant(senders_file, "model", data)
        result = CliRunner().invoke(cli, ["--db", str(senders_file), "dump", "--max-value-size", "5000", "1/start"])
        assert result.exit_code == 0, result.output
        line = next(line for line in result.output.splitlines() if line.strip().startswith("model "))
        assert expect in line and len(line) < 21_000, line[:200]
    assert not marker.exists()
