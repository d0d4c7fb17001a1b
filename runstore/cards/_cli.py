"""What the card commands do, without click (``python flow.py card ...``, ``runstore card``).

Example
-------
>>> from runstore import Store
>>> find_task_for_flow(Store(":memory:"), "F", "1/start/x")
Traceback (most recent call last):
...
runstore.errors.InvalidPathspec: expected STEP, RUN/STEP or RUN/STEP/TASK (e.g. 3/start), not '1/start/x'
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import InvalidPathspec, NotFound, RunstoreError
from ..util import parse_id, printable
from ._client import Card, get_cards

__all__ = ["find_task_for_flow", "find_task", "choose_card", "write_card", "describe_cards", "view_file"]


def _digits(text: str) -> bool:
    return parse_id(text, canonical=False) is not None


def find_task_for_flow(store: Any, flow_name: str, target: str) -> Any:
    """The task a flow's ``card`` command means: ``STEP`` (latest run), ``RUN/STEP`` or ``RUN/STEP/TASK``."""
    from ..client import Flow

    parts = target.strip("/").split("/")
    if parts and parts[0] == flow_name and len(parts) > 1:
        parts = parts[1:]
    if not (len(parts) == 1 or (len(parts) in (2, 3) and _digits(parts[0]) and all(_digits(p) for p in parts[2:]))):
        raise InvalidPathspec(f"expected STEP, RUN/STEP or RUN/STEP/TASK (e.g. 3/start), not {target!r}")
    if len(parts) == 1:
        run = Flow(flow_name, store=store).latest_run
        if run is None:
            raise NotFound(f"{flow_name} has no run in this namespace in {store.where}")
        return find_task(store, f"{run.pathspec}/{parts[0]}")
    return find_task(store, f"{flow_name}/{'/'.join(parts)}")


def find_task(store: Any, pathspec: str) -> Any:
    """The task ``Flow/RUN/STEP/TASK``, or the first task of ``Flow/RUN/STEP``."""
    from ..client import Step, Task

    parts = pathspec.strip("/").split("/")
    if len(parts) == 4:
        return Task(pathspec, store=store)
    if len(parts) == 3:
        task = Step(pathspec, store=store).task
        if task is None:
            raise NotFound(f"{pathspec} has no tasks in {store.where}")
        return task
    raise InvalidPathspec(f"expected FLOW/RUN/STEP or FLOW/RUN/STEP/TASK, not {pathspec!r}")


def choose_card(task: Any, card_id: str | None = None, card_type: str | None = None) -> tuple[Card, list[Card]]:
    """``(card, others)``: the card with ``card_id`` (or the first), and the task's other cards."""
    cards = list(get_cards(task))
    chosen = [c for c in cards if (card_id is None or c.id == card_id) and (card_type is None or c.type == card_type)]
    if not chosen:
        have = ", ".join(describe_cards(cards)) or "none"
        wanted = " ".join(x for x in (f"id {card_id!r}" if card_id else "", f"type {card_type!r}" if card_type else "") if x)
        raise NotFound(printable(f"{task.pathspec} has no card{' with ' + wanted if wanted else ''} (its cards: {have})"))
    return chosen[0], [c for c in cards if c is not chosen[0]]


def describe_cards(cards: list[Card]) -> list[str]:
    """One short line per card: ``report (blank, done)``."""
    return [printable(f"{c.id or '#' + str(c.seq)} ({c.type}, {c.status})") for c in cards]


def write_card(card: Card, path: str | os.PathLike[str]) -> str:
    """Write the card's self-contained HTML to ``path``; a file that cannot be written is one clear error."""
    try:
        return card.save(path)
    except OSError as exc:
        raise RunstoreError(printable(f"cannot write the card to {path}: {exc.strerror or exc}")) from exc


def view_file(card: Card) -> str:
    """A new temporary file name for viewing ``card``."""
    import tempfile

    fd, path = tempfile.mkstemp(prefix="runstore-card-", suffix=".html")
    os.close(fd)
    return path
