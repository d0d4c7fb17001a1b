"""Cards in the store: plain functions over a connection (SPEC §15, docs/cards.md).

A card is a row of ``cards`` — task, position among the step's ``@card`` decorators,
id, type, status — pointing to its HTML, kept as a content-addressed ``bytes`` blob:
an identical card (same HTML) is stored once however many tasks carry it. A live
refresh replaces the row (and makes a new blob; the old one is left to gc).

Example
-------
>>> from runstore import Store
>>> store = Store(":memory:")
>>> run = store.create_run("F", user="anne")
>>> task_id = store.create_task(run.run_id, "start")
>>> key = store.save_card(task_id, 0, card_id=None, type="blank", attempt=0, status="done", html="<p>hi</p>")
>>> [(row.seq, row.status) for row in store.task_cards(task_id)]
[(0, 'done')]
>>> store.card_html(store.task_cards(task_id)[0].blob_key)
'<p>hi</p>'
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

__all__ = ["CardRow", "CARD_STATUSES", "upsert_card", "task_cards", "clone_cards", "run_card_rows"]

#: ``running`` while the task refreshes it, ``done`` once rendered at task end,
#: ``error`` when rendering failed (the HTML then describes the error).
CARD_STATUSES = ("running", "done", "error")

_COLUMNS = "task_id, seq, card_id, type, attempt, status, blob_key, error, updated_at"


@dataclass(frozen=True)
class CardRow:
    """One card of a task as the store records it (its HTML is loaded separately)."""

    task_id: int
    seq: int
    card_id: str | None
    type: str
    attempt: int
    status: str
    blob_key: str | None
    error: str | None
    updated_at: float


def upsert_card(conn: sqlite3.Connection, row: CardRow) -> None:
    """Insert or replace the card ``(row.task_id, row.seq)`` inside the caller's transaction."""
    conn.execute(f"INSERT OR REPLACE INTO cards({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (row.task_id, row.seq, row.card_id, row.type, row.attempt, row.status, row.blob_key,
                  row.error, row.updated_at))


def task_cards(conn: sqlite3.Connection, task_id: int) -> list[CardRow]:
    """The cards of ``task_id`` in decorator order (primary key range scan)."""
    return [CardRow(*row) for row in conn.execute(
        f"SELECT {_COLUMNS} FROM cards WHERE task_id = ? ORDER BY seq", (task_id,))]


def clone_cards(conn: sqlite3.Connection, task_id: int, origin_task_id: int, stamp: float) -> None:
    """Give a resumed clone the cards of its origin task (same blobs, attempt 0)."""
    conn.execute(
        f"INSERT OR REPLACE INTO cards({_COLUMNS}) SELECT ?, seq, card_id, type, 0, status, blob_key, error, ?"
        " FROM cards WHERE task_id = ?", (task_id, stamp, origin_task_id))


def run_card_rows(conn: sqlite3.Connection, run_id: int) -> list[dict[str, Any]]:
    """Every card row of a run's tasks, as dicts (export and merge copy them)."""
    cursor = conn.execute(
        f"SELECT {_COLUMNS} FROM cards WHERE task_id IN (SELECT task_id FROM tasks WHERE run_id = ?)"
        " ORDER BY task_id, seq", (run_id,))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor]
