"""``@card`` and ``current.card``: collecting components while a task runs, rendering its cards.

The decorator only records its options on the step (they travel in ``_graph_info``
like ``@retry``'s). For a step that has cards, the runtime makes a
:class:`CardComponentCollector` — what ``current.card`` is inside the step — and,
after the attempt is committed, :func:`finish_cards` renders every card and stores it.
A step without ``@card`` never imports this module.

Rendering never fails the task: a component that raises becomes an error box in its
card, a card that cannot be rendered at all (or takes longer than ``timeout``
seconds) is stored as an error card with the reason, and a store that refuses the
write is reported on the task's stderr.

Example
-------
>>> from runstore import FlowSpec, step, card
>>> class F(FlowSpec):
...     @card(type="blank", id="report")
...     @step
...     def start(self):
...         self.next(self.end)
...     @step
...     def end(self):
...         pass
>>> F.start._runstore_decorators[-1]["attributes"]["id"]
'report'
"""

from __future__ import annotations

import re
import sys
import threading
import time
import traceback
from typing import Any, Callable, Iterable

from ..errors import FlowDefinitionError
from ..flowspec import _config_aware

__all__ = ["card", "CardComponentCollector", "finish_cards", "CARD_TYPES"]

#: The card types runstore renders.
CARD_TYPES = ("default", "blank")
_ID = re.compile(r"^[A-Za-z0-9_]{1,100}$")


@_config_aware
def card(func: Callable[..., Any] | None = None, *, type: str = "default", id: str | None = None,
         options: dict[str, Any] | None = None, timeout: float = 45, save_errors: bool = True,
         refresh_interval: float = 5) -> Any:
    """Give a step a card: a report rendered when its task ends, live while it runs.

    Parameters
    ----------
    type : str
        ``"default"`` (the task's parameters, artifacts and the DAG with this step
        marked, then any appended components) or ``"blank"`` (only what the step appends).
    id : str, optional
        Name to reach this card by: ``current.card["report"]``, ``get_cards(task, id=...)``.
    timeout : float
        Seconds the card may take to render; beyond that an error card is stored instead.
    save_errors : bool
        Store an error card when rendering fails (otherwise only report it).
    refresh_interval : float
        ``current.card.refresh()`` stores the card at most once per this many seconds.

    Example
    -------
    >>> from runstore import step, card
    >>> @card(type="blank", id="report", timeout=10)
    ... @step
    ... def train(self):
    ...     self.next(self.end)
    >>> [d["attributes"]["type"] for d in train._runstore_decorators]
    ['blank']

    Any argument can come from a config (``@card(type=config_expr("cfg.card_type"))``,
    ``@card(timeout=cfg.t)``): each run fills it in and checks it before anything runs.
    """
    if type not in CARD_TYPES:
        raise FlowDefinitionError(f"@card(type=...) must be one of {', '.join(CARD_TYPES)}, not {type!r}")
    if id is not None and (not isinstance(id, str) or not _ID.match(id)):
        raise FlowDefinitionError(f"@card(id=...) takes letters, digits and underscores, not {id!r}")
    for name, value in (("timeout", timeout), ("refresh_interval", refresh_interval)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise FlowDefinitionError(f"@card({name}=...) takes a positive number of seconds, not {value!r}")

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        decorators = getattr(f, "_runstore_decorators", None)
        if decorators is None:
            decorators = f._runstore_decorators = []  # type: ignore[attr-defined]
        for other in decorators:
            if other["name"] == "card" and other["attributes"] and other["attributes"]["id"] == id:
                what = f"id {id!r}" if id else "no id"
                raise FlowDefinitionError(f"step {f.__name__!r} has two @card with {what}; give each its own id")
        decorators.append({"name": "card", "statically_defined": True, "attributes": {
            "type": type, "id": id, "options": dict(options or {}), "timeout": timeout,
            "save_errors": bool(save_errors), "refresh_interval": refresh_interval}})
        return f

    return wrap(func) if func is not None else wrap


class _Slot:
    """One card of the running task."""

    def __init__(self, seq: int, attributes: dict[str, Any]) -> None:
        self.seq = seq
        self.type: str = attributes.get("type", "default")
        self.id: str | None = attributes.get("id")
        self.timeout = float(attributes.get("timeout", 45))
        self.save_errors = bool(attributes.get("save_errors", True))
        self.refresh_interval = float(attributes.get("refresh_interval", 5))
        self.components: CardComponents = CardComponents(self)
        self.saved_at: float | None = None
        self.pending = False


class CardComponents(list):  # type: ignore[type-arg]
    """The components of one card (``current.card["id"]``): a list, plus :meth:`refresh`.

    Example
    -------
    >>> parts = CardComponents(None)
    >>> parts.append("x"); len(parts)
    1
    """

    def __init__(self, slot: "_Slot | None") -> None:
        super().__init__()
        self._slot = slot
        self._collector: "CardComponentCollector | None" = None

    def refresh(self, *args: Any, **kwargs: Any) -> None:
        """Store this card now (throttled) so readers see it while the task runs."""
        if self._collector is not None:
            self._collector.refresh()

    @property
    def components(self) -> list[Any]:
        """The components themselves (Metaflow's spelling)."""
        return list(self)


class CardComponentCollector:
    """``current.card``: add components to the task's cards and refresh them live.

    ``append``/``extend``/``clear`` act on the *default editable card*: the only card
    of the step, or else the one without an id. ``current.card["report"]`` is the
    card with that id. ``refresh()`` stores the cards now, so another process (the
    UI, ``get_cards``) sees them while the task runs; it is throttled to once per
    ``@card(refresh_interval=...)`` seconds, and the task's end always stores them.

    Example
    -------
    >>> from runstore.cards import Markdown
    >>> collector = CardComponentCollector([{"type": "blank", "id": "report"}])
    >>> collector.append(Markdown("hello"))
    >>> len(collector["report"])
    1
    """

    def __init__(self, cards: Iterable[dict[str, Any]], saver: Callable[[_Slot, str], None] | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self._slots = [_Slot(i, attrs) for i, attrs in enumerate(cards)]
        for slot in self._slots:
            slot.components._collector = self
        self._saver = saver
        self._warn = warn or (lambda message: print(f"runstore: {message}", file=sys.stderr))
        self._warned: set[str] = set()

    def _say_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self._warn(message)

    def _default(self) -> _Slot | None:
        if len(self._slots) == 1:
            return self._slots[0]
        unnamed = [s for s in self._slots if s.id is None]
        if len(unnamed) == 1:
            return unnamed[0]
        self._say_once("current.card.append: this step has several cards and no single one without an id;"
                       " use current.card['<id>'].append(...)")
        return None

    def append(self, component: Any, id: str | None = None) -> None:
        """Add a component to the default editable card (or to the card ``id``)."""
        target = self[id].append if id is not None else (self._default() or _Discard()).components.append
        target(component)

    def extend(self, components: Iterable[Any], id: str | None = None) -> None:
        """Add several components."""
        for component in components:
            self.append(component, id=id)

    def clear(self) -> None:
        """Remove every component of the default editable card."""
        slot = self._default()
        if slot is not None:
            slot.components.clear()

    def __getitem__(self, key: str) -> CardComponents:
        for slot in self._slots:
            if slot.id == key:
                return slot.components
        self._say_once(f"current.card[{key!r}]: no @card(id={key!r}) on this step; what is added there is dropped")
        return _Discard().components

    def __setitem__(self, key: str, value: Iterable[Any]) -> None:
        components = self[key]
        components[:] = list(value)

    @property
    def components(self) -> dict[str | None, CardComponents]:
        """Every card's components by card id."""
        return {slot.id: slot.components for slot in self._slots}

    def refresh(self, *args: Any, force: bool = False, **kwargs: Any) -> None:
        """Store the cards now so they can be watched while the task runs (throttled)."""
        if self._saver is None:
            return
        now = time.monotonic()
        for slot in self._slots:
            if not force and slot.saved_at is not None and now - slot.saved_at < slot.refresh_interval:
                slot.pending = True
                continue
            slot.saved_at = now
            slot.pending = False
            self._saver(slot, "running")


class _Discard:
    def __init__(self) -> None:
        self.components = CardComponents(None)


# ---------------------------------------------------------------- rendering and storing


class _RenderTimeout(Exception):
    pass


def _with_timeout(render: Callable[[], tuple[str, list[str]]], timeout: float) -> tuple[str, list[str]]:
    """Run ``render`` in a helper thread; give up after ``timeout`` seconds (the thread is left to end)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = render()
        except BaseException as exc:  # noqa: BLE001 - reported as the card's error
            box["error"] = exc
            box["detail"] = traceback.format_exc()

    thread = threading.Thread(target=target, name="runstore-card-render", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _RenderTimeout(f"rendering took longer than @card(timeout={timeout:g}) seconds")
    if "error" in box:
        exc = box["error"]
        exc.runstore_detail = box["detail"]
        raise exc
    return box["value"]  # type: ignore[no-any-return]


def _render(slot: _Slot, pathspec: str, status: str, store: Any, body: Callable[[], str] | None) -> tuple[str, list[str]]:
    from ._page import card_page_errors

    before = body() if body is not None else ""
    return card_page_errors(pathspec, slot.type, list(slot.components), card_id=slot.id, before=before,
                            status=status)


def save_slot(store: Any, task_id: int, attempt: int, pathspec: str, slot: _Slot, status: str,
              body: Callable[[], str] | None = None, warn: Callable[[str], None] | None = None) -> None:
    """Render ``slot`` and store it; on any failure store an error card. Never raises."""
    from ._page import error_page

    warn = warn or (lambda message: None)
    name = f"card {slot.id or slot.seq}"
    try:
        try:
            page, errors = _with_timeout(lambda: _render(slot, pathspec, status, store, body), slot.timeout)
            error = "; ".join(errors) or None
            if errors:
                warn(f"{name}: {len(errors)} component(s) failed to render: {errors[0]}")
        except Exception as exc:  # noqa: BLE001 - a card never fails its task
            message = str(exc) if isinstance(exc, _RenderTimeout) else f"{type(exc).__name__}: {exc}"
            warn(f"{name} could not be rendered: {message}")
            if not slot.save_errors:
                return
            page = error_page(pathspec, slot.type, slot.id, message, getattr(exc, "runstore_detail", ""))
            status, error = "error", message
        store.save_card(task_id, slot.seq, card_id=slot.id, type=slot.type, attempt=attempt, status=status,
                        html=page, error=error)
    except Exception as exc:  # noqa: BLE001 - e.g. the store is busy or full: say so, go on
        warn(f"{name} could not be stored: {type(exc).__name__}: {exc}")


def make_collector(store: Any, task_id: int, attempt: int, pathspec: str, cards: list[dict[str, Any]],
                   warn: Callable[[str], None]) -> CardComponentCollector:
    """The ``current.card`` of a running task; its refreshes store live cards."""

    def save(slot: _Slot, status: str) -> None:
        body = _live_default_body if slot.type == "default" else None
        save_slot(store, task_id, attempt, pathspec, slot, status, body, warn)

    return CardComponentCollector(cards, save, warn)


def _live_default_body() -> str:
    return ('<section class="rs-row"><p class="rs-note">The task is running: its parameters, artifacts and DAG'
            " appear here when it ends.</p></section>")


def finish_cards(collector: CardComponentCollector, store: Any, task_id: int, attempt: int, pathspec: str,
                 parameter_names: Iterable[str], graph: dict[str, Any] | None, step: str, status: str,
                 warn: Callable[[str], None]) -> None:
    """Render and store every card of a finished attempt (``status`` is the attempt's)."""
    names = tuple(parameter_names)

    def default_body() -> str:
        from ..client import Task
        from ._page import default_card_body

        task = Task(pathspec, store=store, attempt=attempt, _namespace_check=False)
        return default_card_body(store, task, names, graph, step, status)

    for slot in collector._slots:
        save_slot(store, task_id, attempt, pathspec, slot, "done",
                  default_body if slot.type == "default" else None, warn)
