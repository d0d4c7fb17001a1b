"""Reading cards back: ``get_cards(task)`` → :class:`CardContainer` of :class:`Card`.

A card's HTML is a ``bytes`` blob, loaded (hash-checked, never unpickled) only when
:meth:`Card.get` is called. What ``get`` returns is one self-contained file.

Example
-------
>>> from runstore import Store, Task, namespace
>>> store = Store(":memory:")
>>> run = store.create_run("F", user="anne")
>>> task_id = store.create_task(run.run_id, "start")
>>> _ = store.save_card(task_id, 0, card_id="report", type="blank", attempt=0, status="done", html="<p>hi</p>")
>>> _ = namespace(None)
>>> cards = get_cards(Task(f"F/1/start/{task_id}", store=store))
>>> len(cards), cards[0].id, cards[0].get()
(1, 'report', '<p>hi</p>')
"""

from __future__ import annotations

import html
import os
import tempfile
from typing import Any, Iterator

from ..errors import NotFound

__all__ = ["Card", "CardContainer", "get_cards"]


class Card:
    """One card of a task.

    Attributes: ``id`` (``@card(id=...)`` or None), ``type``, ``status`` (``running``
    while a task refreshes it, ``done``, or ``error`` when rendering failed),
    ``error`` (the reason, or the components that failed), ``hash`` (the blob key
    of its HTML), ``pathspec`` (the task), ``attempt``.

    Example
    -------
    >>> card = Card(None, "F/1/start/2", 0, None, "blank", 0, "done", None, None)
    >>> card.get()
    ''
    """

    def __init__(self, store: Any, pathspec: str, seq: int, card_id: str | None, type: str, attempt: int,
                 status: str, blob_key: str | None, error: str | None) -> None:
        self._store = store
        self.pathspec = pathspec
        self.seq = seq
        self.id = card_id
        self.type = type
        self.attempt = attempt
        self.status = status
        self.hash = blob_key
        self.error = error

    def get(self) -> str:
        """The card as one self-contained HTML document (charts' libraries inlined).

        Example
        -------
        >>> # html = get_cards(Task("F/1/start/2"))[0].get()
        """
        if self.hash is None or self._store is None:
            return ""
        from ._page import standalone

        return standalone(self._store.card_html(self.hash))

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write :meth:`get` to ``path``; returns the path."""
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.get())
        return str(path)

    def view(self) -> str:
        """Open the card in the web browser (from a temporary file); returns the file."""
        import webbrowser

        fd, path = tempfile.mkstemp(prefix="runstore-card-", suffix=".html")
        os.close(fd)
        self.save(path)
        webbrowser.open("file://" + path)
        return path

    def _repr_html_(self) -> str:
        # Jupyter shows it in a sandboxed iframe: the card's own script (charts) runs,
        # but not in the notebook's origin.
        return (f'<iframe sandbox="allow-scripts" srcdoc="{html.escape(self.get(), quote=True)}" '
                'style="width:100%;height:600px;border:1px solid #ddd"></iframe>')

    def __repr__(self) -> str:
        return f"Card({self.pathspec!r}, type={self.type!r}, id={self.id!r}, status={self.status!r})"


class CardContainer:
    """The cards of a task: indexable, iterable; shows them all in Jupyter.

    Example
    -------
    >>> len(CardContainer([]))
    0
    """

    def __init__(self, cards: list[Card]) -> None:
        self._cards = cards

    def __len__(self) -> int:
        return len(self._cards)

    def __iter__(self) -> Iterator[Card]:
        return iter(self._cards)

    def __getitem__(self, index: int) -> Card:
        return self._cards[index]

    def _repr_html_(self) -> str:
        return "".join(card._repr_html_() for card in self._cards) or "<p>no cards</p>"

    def __repr__(self) -> str:
        return f"CardContainer({self._cards!r})"


def get_cards(task: Any, id: str | None = None, type: str | None = None, follow_resumed: bool = True) -> CardContainer:
    """The cards of ``task`` (a ``Task`` or its pathspec), optionally only those of an id or type.

    A task cloned by ``resume`` carries its origin's cards itself, so
    ``follow_resumed`` is accepted for Metaflow compatibility and needs no extra lookup.

    Example
    -------
    >>> from runstore.cards import get_cards
    >>> # for card in get_cards(Flow("TrainFlow").latest_run["train"].task): card.save("train.html")
    """
    if isinstance(task, str):
        from ..client import Task

        task = Task(task)
    store = getattr(task, "_store", None)
    if store is None:
        raise NotFound(f"{task!r} is not a task read from a store")
    task_id = int(str(task.pathspec).rsplit("/", 1)[-1])
    cards = [Card(store, task.pathspec, r.seq, r.card_id, r.type, r.attempt, r.status, r.blob_key, r.error)
             for r in store.task_cards(task_id)]
    cards = [c for c in cards if (id is None or c.id == id) and (type is None or c.type == type)]
    return CardContainer(cards)
