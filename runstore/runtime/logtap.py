"""File-descriptor-level capture of a worker's output, streamed into the store while a task runs.

A worker process calls :meth:`LogTap.install` once: file descriptors 1 and 2 become the
write ends of two pipes (``os.dup2``), so whatever writes there is captured — ``print``,
``logging`` handlers that kept the old ``sys.stderr``, C extensions (``os.write(1, ...)``)
and subprocesses that inherit the descriptors. One reader thread per process reads the
pipes and, for the task in progress (:meth:`LogTap.begin`):

- echoes each complete line to the real terminal, prefixed ``[RUN/STEP/TASK]`` (unless quiet);
- streams the lines into ``attempts.stdout``/``stderr`` in batches — every
  :data:`BATCH_LINES` lines or :data:`BATCH_SECONDS`, whichever comes first — with the
  time each batch was read (``log_stamps``), so a running task can be tailed and what
  an attempt printed before its process died (``os._exit``, SIGKILL, a segfault) is kept
  (all but at most the last :data:`BATCH_SECONDS`);
- keeps at most :data:`MAX_LOG_BYTES` per stream: the first and the last half, with a
  line in between saying how many bytes and lines were dropped.

Example
-------
>>> log = _StreamLog()
>>> log.feed([b"a\\n", b"b\\n"], 1.0)
>>> log.text(), log.pending_lines
('a\\nb\\n', 2)
"""

from __future__ import annotations

import collections
import os
import select
import threading
import time
from typing import Any

__all__ = ["LogTap", "InlineLog", "Shadow", "drain", "MAX_LOG_BYTES", "BATCH_LINES", "BATCH_SECONDS"]

#: Bytes of stdout (and of stderr) kept per attempt: the first and the last half of it.
MAX_LOG_BYTES = 10 * 1024 * 1024
#: A batch is written to the store after this many lines ...
BATCH_LINES = 1000
#: ... or this many seconds after its first line, whichever comes first.
BATCH_SECONDS = 0.2
_READ = 1 << 16


class _StreamLog:
    """One stream of one attempt: the head, the tail past the cap, and what is not yet stored."""

    def __init__(self, cap: int = MAX_LOG_BYTES) -> None:
        self.half = cap // 2
        self.head_stored: list[str] = []  # head text already in the store, one string per batch
        self.head_new: list[tuple[float, str]] = []  # head lines not yet stored
        self.head_lines = 0  # lines in head_stored
        self.head_chars = 0  # characters in head_stored
        self.head_bytes = 0
        self.tail: collections.deque[tuple[float, str, int]] = collections.deque()
        self.tail_bytes = 0
        self.dropped_bytes = 0
        self.dropped_lines = 0
        self.tail_dirty = False
        self.pending_lines = 0
        self.since: float | None = None  # when the first line not yet stored arrived

    def feed(self, lines: list[bytes], ts: float) -> None:
        """Take complete lines read from a pipe at ``ts`` (decoded here, sized in bytes)."""
        self.feed_text([raw.decode("utf-8", "replace") for raw in lines], ts, [len(raw) for raw in lines])

    def feed_text(self, lines: list[str], ts: float, sizes: list[int] | None = None) -> None:
        """Take complete lines written as text at ``ts`` (inline tasks: sized in characters)."""
        for i, line in enumerate(lines):
            size = len(line) if sizes is None else sizes[i]
            if not self.tail and self.head_bytes + size <= self.half:
                self.head_new.append((ts, line))
                self.head_bytes += size
            else:
                self.tail.append((ts, line, size))
                self.tail_bytes += size
                self.tail_dirty = True
                while self.tail_bytes > self.half and len(self.tail) > 1:
                    _, _, dropped = self.tail.popleft()
                    self.tail_bytes -= dropped
                    self.dropped_bytes += dropped
                    self.dropped_lines += 1
            self.pending_lines += 1
        if lines and self.since is None:
            self.since = ts

    def _marker(self) -> str:
        return (f"[runstore: {self.dropped_bytes} bytes ({self.dropped_lines} lines) of output dropped here; "
                f"the first and last {self.half // (1 << 20) or self.half} "
                f"{'MiB' if self.half >= 1 << 20 else 'bytes'} are kept]\n")

    def text(self) -> str:
        """The log as it is kept: head, then (past the cap) the drop line and the tail."""
        out = "".join(self.head_stored) + "".join(line for _, line in self.head_new)
        if self.tail:
            if self.dropped_bytes:
                out += self._marker()
            out += "".join(line for _, line, _ in self.tail)
        return out

    def batch(self) -> tuple[str, list[tuple[int, float]], int | None, int] | None:
        """What to write to the store now: ``(text, stamps, replace_from, keep_chars)`` or None."""
        if not self.pending_lines:
            return None
        stamps: list[tuple[int, float]] = []
        last = None
        for i, (ts, _) in enumerate(self.head_new):
            if ts != last:
                stamps.append((self.head_lines + i, ts))
                last = ts
        keep = self.head_chars  # what the store holds of the head before this batch
        head = "".join(line for _, line in self.head_new)
        parts = [head]
        if head:
            self.head_stored.append(head)
        self.head_lines += len(self.head_new)
        self.head_chars += len(head)
        self.head_new = []
        replace_from: int | None = None
        if self.tail_dirty:  # past the half: rewrite everything after the head
            replace_from = self.head_lines
            index = self.head_lines
            if self.dropped_bytes:
                parts.append(self._marker())
                stamps.append((index, self.tail[0][0]))
                index += 1
                last = self.tail[0][0]
            for ts, line, _ in self.tail:
                if ts != last:
                    stamps.append((index, ts))
                    last = ts
                parts.append(line)
                index += 1
            self.tail_dirty = False
        self.pending_lines = 0
        self.since = None
        return "".join(parts), stamps, replace_from, keep


class Shadow:
    """What a worker's reader took from its pipes but has not stored yet, in memory it shares
    with the scheduler (an anonymous shared ``mmap`` made before the fork).

    A worker that dies (``os._exit``, SIGKILL, a segfault) cannot store its last batch; the
    scheduler then reads it from here (:meth:`take`), followed by what is still in the pipes
    (:func:`drain`), so nothing it printed is lost. Per stream: an 8-byte length, then the bytes.

    Example
    -------
    >>> shadow = Shadow(64)
    >>> shadow.append("stdout", b"partial ")
    True
    >>> shadow.append("stdout", b"line\\n")
    True
    >>> shadow.take("stdout"), shadow.take("stderr")
    (b'partial line\\n', b'')
    >>> shadow.reset("stdout", b"rest"); shadow.take("stdout")
    b'rest'
    >>> shadow.close()
    """

    def __init__(self, size: int = 1 << 20) -> None:
        import mmap

        self.size = size
        self.mem = mmap.mmap(-1, 2 * (8 + size))  # MAP_SHARED: the forked worker writes, we read

    def _base(self, stream: str) -> int:
        return 0 if stream == "stdout" else 8 + self.size

    def _length(self, stream: str) -> int:
        return min(int.from_bytes(self.mem[self._base(stream):self._base(stream) + 8], "little"), self.size)

    def append(self, stream: str, data: bytes) -> bool:
        """Add bytes just read; False (nothing added) when they do not fit."""
        base, n = self._base(stream), self._length(stream)
        if n + len(data) > self.size:
            return False
        self.mem[base + 8 + n:base + 8 + n + len(data)] = data
        self.mem[base:base + 8] = (n + len(data)).to_bytes(8, "little")  # the length last
        return True

    def reset(self, stream: str, keep: bytes = b"") -> None:
        """The stored batch is safe: keep only ``keep`` (the line not yet complete)."""
        base = self._base(stream)
        keep = keep[-self.size:]
        self.mem[base:base + 8] = (0).to_bytes(8, "little")
        self.mem[base + 8:base + 8 + len(keep)] = keep
        self.mem[base:base + 8] = len(keep).to_bytes(8, "little")

    def take(self, stream: str) -> bytes:
        base = self._base(stream)
        return bytes(self.mem[base + 8:base + 8 + self._length(stream)])

    def close(self) -> None:
        try:
            self.mem.close()
        except (BufferError, ValueError):  # pragma: no cover - still exported somewhere
            pass


class _Task:
    def __init__(self, store: Any, task_id: int, attempt: int, prefix: str, echo: bool) -> None:
        self.store = store
        self.task_id = task_id
        self.attempt = attempt
        self.prefix = prefix.encode()
        self.echo = echo
        self.logs = {"stdout": _StreamLog(), "stderr": _StreamLog()}
        self.error: BaseException | None = None


class LogTap:
    """The per-process capture of file descriptors 1 and 2 (see the module docstring).

    Example
    -------
    >>> tap = LogTap()   # nothing happens until install(), which a worker process calls
    >>> tap.installed
    False
    """

    def __init__(self) -> None:
        self.installed = False
        self.shadow: Shadow | None = None
        self._task: _Task | None = None
        self._last: _Task | None = None  # "Task finished." is said after the log is closed
        self._lock = threading.Lock()
        self._drained = threading.Event()
        self._busy = False  # the reader thread holds bytes it has not delivered yet

    def install(self, pipes: dict[str, tuple[int, int]] | None = None, shadow: Shadow | None = None) -> None:
        """Point fds 1 and 2 at pipes read by a daemon thread; the real ones are kept for the echo.

        ``pipes``: ``{"stdout": (read, write), "stderr": ...}`` made by the process that
        forked this one, which keeps a copy of each read end: when this process dies, what
        is still in a pipe is read there (:func:`drain`) instead of being lost, and so is what
        this process read but had not stored yet (``shadow``, memory shared with that process).
        """
        if self.installed:
            return
        self.shadow = shadow
        self.real = {"stdout": os.dup(1), "stderr": os.dup(2)}
        self.read: dict[int, str] = {}
        for fd, stream in ((1, "stdout"), (2, "stderr")):
            r, w = pipes[stream] if pipes else os.pipe()
            os.dup2(w, fd)
            os.close(w)
            os.set_blocking(r, False)
            self.read[r] = stream
        self.partial = {"stdout": b"", "stderr": b""}
        self._wake_r, self._wake_w = os.pipe()
        self.installed = True
        threading.Thread(target=self._loop, name="runstore-logtap", daemon=True).start()

    def say(self, message: str) -> None:
        """Echo a runtime message (``Task is starting.``) to the real stderr, not into the log."""
        task = self._task or self._last
        if task is not None and task.echo:
            self._echo("stderr", task.prefix + b" " + message.encode("utf-8", "replace") + b"\n")

    def _echo(self, stream: str, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.real[stream], view):]
        except OSError:  # the terminal went away (closed pipe): capture goes on, the echo stops
            pass

    def begin(self, store: Any, task_id: int, attempt: int, prefix: str, echo: bool) -> None:
        """Start routing captured output to this attempt (its row exists: ``start_attempt`` ran)."""
        with self._lock:
            self._task = _Task(store, task_id, attempt, prefix, echo)

    def end(self) -> tuple[str, str]:
        """Drain what the task wrote, store the last batch; return its stdout and stderr as kept."""
        self._flush_streams()
        if not self._idle():
            self._sync()
        with self._lock:
            task, self._task = self._task, None
            self._last = task
        if task is None:
            return "", ""
        return task.logs["stdout"].text(), task.logs["stderr"].text()

    @staticmethod
    def _flush_streams() -> None:
        import sys

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass

    def _idle(self) -> bool:
        """Nothing written is unread or unstored (saves a round trip to the thread per quiet task)."""
        import fcntl
        import struct
        import termios

        busy = self._busy
        for fd in self.read:
            if struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]:
                return False
        task = self._task
        pending = any(self.partial.values()) or task is None or any(
            log.pending_lines for log in task.logs.values())
        return not (busy or pending or self._busy)

    def _sync(self) -> None:
        self._drained.clear()
        os.write(self._wake_w, b"x")
        self._drained.wait(10)

    # ------------------------------------------------------------ the reader thread

    def _loop(self) -> None:
        while True:
            try:
                self._step()
            except Exception:  # noqa: BLE001 - the reader must outlive any surprise, or writers block
                self._busy = False
                self._drained.set()
                time.sleep(0.01)

    def _step(self) -> None:
        fds = [*self.read, self._wake_r]
        while True:
            task = self._task
            timeout = None
            if task is not None:
                since = [log.since for log in task.logs.values() if log.since is not None]
                if since:
                    timeout = max(0.0, min(since) + BATCH_SECONDS - time.time())
            ready, _, _ = select.select(fds, [], [], timeout)
            self._busy = True
            for fd in ready:
                if fd != self._wake_r:
                    self._read(fd)
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
                for fd in self.read:  # everything written before the request is in the pipes now
                    self._read(fd, until_empty=True)
                self._flush(force=True, partial=True)
                self._drained.set()
            else:
                self._flush(force=False)
            self._busy = False

    def _read(self, fd: int, until_empty: bool = False) -> None:
        stream = self.read[fd]
        while True:
            try:
                data = os.read(fd, _READ)
            except BlockingIOError:
                return
            if not data:
                return
            ts = time.time()
            shadow = self.shadow
            if shadow is not None and not shadow.append(stream, data):
                self._flush(force=True)  # the shared copy is full: store what is pending first
                shadow.append(stream, data)
            pending = self.partial[stream] + data
            lines = pending.split(b"\n")
            rest = lines.pop()
            complete = [line + b"\n" for line in lines]
            if len(rest) > _READ:  # a very long line without a newline: take it as it is
                complete.append(rest)
                rest = b""
            self.partial[stream] = rest
            self._deliver(stream, complete, ts)
            if shadow is not None and self._task is None:  # between tasks: nothing to keep
                shadow.reset(stream, rest)
            if not until_empty and len(data) < _READ:
                return

    def _deliver(self, stream: str, lines: list[bytes], ts: float) -> None:
        task = self._task
        if task is None:  # output between tasks (a lingering subprocess): echoed, not stored
            if lines:
                self._echo(stream, b"".join(lines))
            return
        if task.echo and lines:
            self._echo(stream, b"".join(task.prefix + b" " + line if line.endswith(b"\n")
                                        else task.prefix + b" " + line + b"\n" for line in lines))
        task.logs[stream].feed(lines, ts)

    def _flush(self, force: bool, partial: bool = False) -> None:
        task = self._task
        if task is None:
            return
        if partial:  # the task ends: a last line without a newline belongs to it
            for stream, rest in self.partial.items():
                if rest:
                    self.partial[stream] = b""
                    self._deliver(stream, [rest], time.time())
        now = time.time()
        for stream, log in task.logs.items():
            due = force or log.pending_lines >= BATCH_LINES and not log.tail or (
                log.since is not None and now - log.since >= BATCH_SECONDS)
            if not due:
                continue
            batch = log.batch()
            if batch is None:
                continue
            if task.error is None:
                text, stamps, replace_from, keep = batch
                try:
                    task.store.append_log(task.task_id, task.attempt, stream, text, stamps,
                                          replace_from=replace_from, keep_chars=keep)
                except BaseException as exc:  # noqa: BLE001 - the final commit still stores the whole log
                    task.error = exc
            if self.shadow is not None:  # stored: a death from now on loses none of it
                self.shadow.reset(stream, self.partial[stream])


def drain(fd: int, limit: int = 1 << 20) -> bytes:
    """What is left in a pipe whose reader died (up to ``limit`` bytes; never blocks).

    Example
    -------
    >>> r, w = os.pipe(); _ = os.write(w, b"last words\\n"); os.close(w)
    >>> drain(r)
    b'last words\\n'
    >>> os.close(r)
    """
    os.set_blocking(fd, False)
    parts: list[bytes] = []
    got = 0
    while got < limit:
        try:
            data = os.read(fd, min(_READ, limit - got))
        except (BlockingIOError, OSError):
            break
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


# ------------------------------------------------------------ inline tasks

class InlineLog:
    """An inline task's output (written as text to the ``sys.stdout``/``sys.stderr`` proxies),
    kept as a worker's is (head and tail past :data:`MAX_LOG_BYTES`) and, when ``store`` is
    given, streamed into it in the same batches (:data:`BATCH_LINES` / :data:`BATCH_SECONDS`)
    by one background thread per process, so ``task.stdout`` of a running inline task
    (``--max-workers 1``, ``Store(":memory:")``) returns what it printed so far.

    Example
    -------
    >>> log = InlineLog(None, 0, 0)
    >>> log.write("stdout", "a\\nb")
    >>> log.close()
    ('a\\nb\\n', '')
    """

    def __init__(self, store: Any, task_id: int, attempt: int) -> None:
        self.store = store
        self.task_id = task_id
        self.attempt = attempt
        self.logs = {"stdout": _StreamLog(), "stderr": _StreamLog()}
        self.partial = {"stdout": "", "stderr": ""}
        self.lock = threading.Lock()  # the logs' state (the writing thread and the flusher)
        self.storing = threading.Lock()  # one batch at a time reaches the store, in order
        self.error: BaseException | None = None
        if store is not None:
            _FLUSHER.add(self)

    def write(self, stream: str, text: str) -> None:
        """Keep ``text``; its complete lines join the next batch."""
        pending = self.partial[stream] + text
        if "\n" not in text and len(pending) <= _READ:
            self.partial[stream] = pending
            return
        *lines, rest = pending.split("\n")
        if len(rest) > _READ:  # a very long line without a newline: take it as it is
            lines.append(rest)
            rest = ""
        self.partial[stream] = rest
        log = self.logs[stream]
        with self.lock:
            first = log.since is None
            log.feed_text([line + "\n" for line in lines], time.time())
            due = log.pending_lines >= BATCH_LINES
        if self.store is not None and (first or due):
            _FLUSHER.wake()

    def due(self, now: float) -> float | None:
        """Seconds until a batch is due (0: now), None when nothing waits."""
        waits = []
        for log in self.logs.values():
            since = log.since  # read once: the writing thread may store a batch meanwhile
            if since is not None:
                waits.append(0.0 if log.pending_lines >= BATCH_LINES and not log.tail
                             else max(0.0, since + BATCH_SECONDS - now))
        return min(waits) if waits else None

    def flush(self, force: bool = False) -> None:
        """Store the batches that are due (all of them with ``force``)."""
        with self.storing:
            now = time.time()
            for stream, log in self.logs.items():
                with self.lock:
                    ready = force or log.pending_lines >= BATCH_LINES and not log.tail or (
                        log.since is not None and now - log.since >= BATCH_SECONDS)
                    batch = log.batch() if ready else None
                if batch is None or self.error is not None:
                    continue
                text, stamps, replace_from, keep = batch
                try:
                    self.store.append_log(self.task_id, self.attempt, stream, text, stamps,
                                          replace_from=replace_from, keep_chars=keep)
                except BaseException as exc:  # noqa: BLE001 - the final commit still stores the whole log
                    self.error = exc

    def close(self) -> tuple[str, str]:
        """Stop streaming, store the last batch; the stdout and stderr as kept."""
        for stream, rest in self.partial.items():
            if rest:
                self.partial[stream] = ""
                with self.lock:
                    self.logs[stream].feed_text([rest + "\n"], time.time())
        if self.store is not None:
            _FLUSHER.remove(self)
            if any(log.pending_lines for log in self.logs.values()):
                self.flush(force=True)  # the stamps of the last lines (finish_attempt writes the text)
        return self.logs["stdout"].text(), self.logs["stderr"].text()


class _Flusher:
    """The one thread per process that stores the due batches of running inline tasks."""

    def __init__(self) -> None:
        self.logs: set[InlineLog] = set()
        self.cond = threading.Condition()
        self.pid = 0

    def add(self, log: InlineLog) -> None:
        with self.cond:
            self.logs.add(log)
            if self.pid != os.getpid():  # first use in this process (a fork has no thread)
                self.pid = os.getpid()
                threading.Thread(target=self._loop, name="runstore-inline-logs", daemon=True).start()

    def remove(self, log: InlineLog) -> None:
        with self.cond:
            self.logs.discard(log)

    def wake(self) -> None:
        with self.cond:
            self.cond.notify()

    def _loop(self) -> None:
        while True:
            with self.cond:
                now = time.time()
                waits = [(log.due(now), log) for log in self.logs]
                soonest = [w for w, _ in waits if w is not None]
                if not soonest or min(soonest) > 0:
                    self.cond.wait(min(soonest) if soonest else None)
                    continue
                ready = [log for w, log in waits if w == 0]
            for log in ready:
                try:
                    log.flush()
                except BaseException:  # noqa: BLE001 - the thread must outlive any surprise
                    pass


    def _after_fork(self) -> None:
        """In a forked child: no thread, no logs, and a fresh lock (the parent's may have been held)."""
        self.logs = set()
        self.cond = threading.Condition()
        self.pid = 0


_FLUSHER = _Flusher()
os.register_at_fork(after_in_child=_FLUSHER._after_fork)
