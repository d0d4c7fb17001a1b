"""Card components, with Metaflow's names and signatures (``metaflow.cards``).

Each component turns into an HTML fragment when the card is rendered
(:meth:`CardComponent.render`); everything a component shows is HTML-escaped, so
a value can never add markup to the card. A component is a row of the card, in the
order appended. Write your own by subclassing :class:`CardComponent`.

Example
-------
>>> from runstore.cards import Markdown, Table, ProgressBar
>>> Markdown("# Hello *there*").render()
'<div class="rs-md"><h1>Hello <em>there</em></h1></div>'
>>> "<td>1</td>" in Table([[1, 2]], headers=["a", "b"]).render()
True
>>> bar = ProgressBar(max=10, label="epochs")
>>> bar.update(5)
>>> 'value="5"' in bar.render()
True
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from typing import Any, Iterable, Sequence

__all__ = ["CardComponent", "Markdown", "Table", "Image", "Artifact", "VegaChart", "ProgressBar", "Error"]

_CELL_TEXT_MAX = 2000
_ARTIFACT_TEXT_MAX = 20_000
_TABLE_ROWS_MAX = 1000


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f" … ({len(text) - limit:,} more characters)"


class CardComponent:
    """Base of card components (Metaflow's ``MetaflowCardComponent``).

    Subclass it and return an HTML fragment from :meth:`render`. A component whose
    ``render`` raises is shown as an error box; the rest of the card still renders.

    Example
    -------
    >>> class Shout(CardComponent):
    ...     def __init__(self, text):
    ...         self.text = text
    ...     def render(self):
    ...         return "<p>" + self.text.upper() + "</p>"
    >>> Shout("hi").render()
    '<p>HI</p>'
    """

    #: Metaflow's flag: ``False`` means the component may change with ``update``.
    REALTIME_UPDATABLE = False

    def render(self) -> str:
        """This component as an HTML fragment."""
        raise NotImplementedError

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Change the component in place (shown at the next ``current.card.refresh()``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be updated")


# ---------------------------------------------------------------- Markdown


_INLINE = [
    (re.compile(r"`([^`]+)`"), None),  # code spans are handled first, separately
    (re.compile(r"\*\*(.+?)\*\*|__(.+?)__"), "strong"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?!\w)|(?<![\w_])_(?!\s)(.+?)(?<!\s)_(?!\w)"), "em"),
    (re.compile(r"~~(.+?)~~"), "del"),
]
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_SAFE_URL = re.compile(r"^(https?://|mailto:|#)", re.IGNORECASE)


def _inline(text: str) -> str:
    """Inline markdown of one line of *raw* text into escaped HTML."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if len(part) > 2 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{_esc(part[1:-1])}</code>")
            continue
        chunk = _esc(part)

        def link(m: re.Match[str]) -> str:
            url = html.unescape(m.group(2))
            if not _SAFE_URL.match(url):
                return m.group(1)
            return f'<a href="{_esc(url)}" target="_blank" rel="noopener noreferrer">{m.group(1)}</a>'

        chunk = _LINK.sub(link, chunk)
        for pattern, tag in _INLINE[1:]:
            chunk = pattern.sub(lambda m, t=tag: f"<{t}>{next(g for g in m.groups() if g is not None)}</{t}>", chunk)
        out.append(chunk)
    return "".join(out)


def markdown_to_html(text: str) -> str:
    """A small, safe Markdown: headings, paragraphs, emphasis, code, lists, quotes, links, rules.

    Everything is escaped first; links keep only ``http(s)``, ``mailto`` and ``#`` URLs.

    Example
    -------
    >>> markdown_to_html("- a\\n- <b>")
    '<ul><li>a</li><li>&lt;b&gt;</li></ul>'
    """
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    para: list[str] = []
    lst: tuple[str, list[str]] | None = None

    def flush() -> None:
        nonlocal lst
        if para:
            out.append("<p>" + "<br>".join(_inline(p) for p in para) + "</p>")
            para.clear()
        if lst is not None:
            out.append(f"<{lst[0]}>" + "".join(f"<li>{_inline(i)}</li>" for i in lst[1]) + f"</{lst[0]}>")
            lst = None

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            code = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            out.append(f"<pre><code>{_esc(chr(10).join(code))}</code></pre>")
        elif not stripped:
            flush()
        elif m := re.match(r"^(#{1,6})\s+(.*?)\s*#*$", stripped):
            flush()
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
        elif re.match(r"^(-{3,}|\*{3,}|_{3,})$", stripped):
            flush()
            out.append("<hr>")
        elif stripped.startswith(">"):
            flush()
            out.append(f"<blockquote>{_inline(stripped[1:].strip())}</blockquote>")
        elif m := re.match(r"^([-*+]|\d+[.)])\s+(.*)$", stripped):
            kind = "ol" if m.group(1)[0].isdigit() else "ul"
            if para or (lst is not None and lst[0] != kind):
                flush()
            if lst is None:
                lst = (kind, [])
            lst[1].append(m.group(2))
        else:
            if lst is not None:
                flush()
            para.append(stripped)
        i += 1
    flush()
    return "".join(out)


class Markdown(CardComponent):
    """Text written in Markdown.

    Parameters
    ----------
    text : str
        The Markdown; rendered by a small safe renderer (all HTML in it is escaped).

    Example
    -------
    >>> Markdown("**bold** and `code`").render()
    '<div class="rs-md"><p><strong>bold</strong> and <code>code</code></p></div>'
    """

    REALTIME_UPDATABLE = True

    def __init__(self, text: str | None = None) -> None:
        self.text = "" if text is None else str(text)

    def update(self, text: str | None = None) -> None:  # type: ignore[override]
        """Replace the text."""
        self.text = "" if text is None else str(text)

    def render(self) -> str:
        return f'<div class="rs-md">{markdown_to_html(self.text)}</div>'


# ---------------------------------------------------------------- Table


def _cell(value: Any) -> str:
    if isinstance(value, CardComponent):
        return value.render()
    return _esc(_cut(str(value), _CELL_TEXT_MAX))


class Table(CardComponent):
    """A table of rows, or of a pandas DataFrame.

    Parameters
    ----------
    data : list of rows, or a DataFrame
        Each row a list of values (or components: a cell can hold a chart or an image).
    headers : list of str, optional
        Column titles (a DataFrame brings its own).

    Example
    -------
    >>> html = Table([["a", 1], ["b", 2]], headers=["name", "n"]).render()
    >>> html.count("<tr>")
    3
    """

    REALTIME_UPDATABLE = True

    def __init__(self, data: Any = None, headers: Sequence[str] | None = None,
                 disable_updates: bool = False) -> None:
        self.headers: list[str] = [str(h) for h in headers] if headers else []
        self.disable_updates = disable_updates
        self._note = ""
        self.data: list[list[Any]] = []
        self._set(data)

    @classmethod
    def from_dataframe(cls, dataframe: Any = None, truncate: bool = True) -> "Table":
        """A table of a DataFrame (the first 1,000 rows when ``truncate``).

        Example
        -------
        >>> import pandas as pd
        >>> "<th>x</th>" in Table.from_dataframe(pd.DataFrame({"x": [1]})).render()
        True
        """
        table = cls()
        table._set(dataframe, truncate=truncate)
        return table

    def _set(self, data: Any, truncate: bool = True) -> None:
        if data is None:
            self.data = []
            return
        if _is_dataframe(data):
            frame = data
            total = len(frame)
            if truncate and total > _TABLE_ROWS_MAX:
                frame = frame.head(_TABLE_ROWS_MAX)
                self._note = f"first {_TABLE_ROWS_MAX:,} of {total:,} rows"
            index_name = frame.index.name or ""
            self.headers = [str(index_name)] + [str(c) for c in frame.columns]
            self.data = [[i, *row] for i, row in zip(frame.index, frame.itertuples(index=False))]
            return
        rows = [list(row) if isinstance(row, (list, tuple)) else [row] for row in data]
        self.data = rows

    def update(self, data: Any = None) -> None:  # type: ignore[override]
        """Replace the rows (ignored when made with ``disable_updates=True``)."""
        if not self.disable_updates:
            self._set(data)

    def render(self) -> str:
        head = "".join(f"<th>{_esc(h)}</th>" for h in self.headers)
        rows = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                       for row in self.data[:_TABLE_ROWS_MAX])
        note = f'<p class="rs-note">{_esc(self._note)}</p>' if self._note else ""
        return (f'<table class="rs-table">{"<thead><tr>" + head + "</tr></thead>" if head else ""}'
                f"<tbody>{rows}</tbody></table>{note}")


def _is_dataframe(value: Any) -> bool:
    kind = type(value)
    return kind.__name__ == "DataFrame" and kind.__module__.startswith("pandas")


# ---------------------------------------------------------------- Image

_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
]


def _mime(data: bytes) -> str:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "image/svg+xml"  # shown by <img>, where an SVG cannot run script
    raise ValueError("Image(src=...) takes PNG, JPEG, GIF, BMP, WebP or SVG bytes")


def _figure_png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _pil_png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _image_bytes(src: Any) -> bytes:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    if hasattr(src, "savefig"):  # a matplotlib Figure (or pyplot's module)
        return _figure_png(src)
    if hasattr(src, "figure") and hasattr(src.figure, "savefig"):  # an Axes
        return _figure_png(src.figure)
    if hasattr(src, "save") and hasattr(src, "mode") and hasattr(src, "size"):  # a PIL image
        return _pil_png(src)
    raise TypeError(f"Image takes bytes, a PIL image or a matplotlib figure, not {type(src).__name__}")


class Image(CardComponent):
    """An image: bytes (PNG, JPEG, GIF, BMP, WebP, SVG), a PIL image or a matplotlib figure.

    The picture is converted when the component is made (a figure changed later is not
    redrawn) and embedded in the card as a ``data:`` URL, so the card stays one file.
    Pillow and matplotlib are optional: runstore imports neither.

    Example
    -------
    >>> png = bytes.fromhex("89504e470d0a1a0a") + b"rest"
    >>> Image(png, label="pic").render().startswith('<figure class="rs-image"><img src="data:image/png;base64,')
    True
    """

    def __init__(self, src: Any = None, label: str | None = None, disable_updates: bool = True) -> None:
        self.label = label
        self.disable_updates = disable_updates
        self.src = None if src is None else _image_bytes(src)
        if self.src is not None:
            _mime(self.src)

    @classmethod
    def from_pil_image(cls, pilimage: Any, label: str | None = None, disable_updates: bool = False) -> "Image":
        """An image of a PIL image (saved as PNG)."""
        return cls(_pil_png(pilimage), label=label, disable_updates=disable_updates)

    @classmethod
    def from_matplotlib(cls, plot: Any, label: str | None = None, disable_updates: bool = False) -> "Image":
        """An image of a matplotlib figure or axes (saved as PNG)."""
        return cls(_image_bytes(plot), label=label, disable_updates=disable_updates)

    def update(self, image: Any, label: str | None = None) -> None:  # type: ignore[override]
        """Replace the picture (and the label)."""
        self.src = _image_bytes(image)
        _mime(self.src)
        if label is not None:
            self.label = label

    def render(self) -> str:
        if self.src is None:
            return '<figure class="rs-image"><p class="rs-note">no image</p></figure>'
        data = base64.b64encode(self.src).decode("ascii")
        caption = f"<figcaption>{_esc(self.label)}</figcaption>" if self.label else ""
        alt = _esc(self.label or "image")
        return f'<figure class="rs-image"><img src="data:{_mime(self.src)};base64,{data}" alt="{alt}">{caption}</figure>'


# ---------------------------------------------------------------- Artifact


class Artifact(CardComponent):
    """Any Python value, shown as its (escaped, shortened) ``repr``.

    Example
    -------
    >>> Artifact({"a": 1}, name="params").render()
    '<div class="rs-artifact"><b>params</b><pre>{&#x27;a&#x27;: 1}</pre></div>'
    """

    REALTIME_UPDATABLE = True

    def __init__(self, artifact: Any, name: str | None = None, compressed: bool = True) -> None:
        self.artifact = artifact
        self.name = name
        self.compressed = compressed

    def update(self, artifact: Any) -> None:  # type: ignore[override]
        """Show another value."""
        self.artifact = artifact

    def render(self) -> str:
        text = repr(self.artifact)
        if self.compressed:
            text = _cut(text, _ARTIFACT_TEXT_MAX)
        name = f"<b>{_esc(self.name)}</b>" if self.name else ""
        return f'<div class="rs-artifact">{name}<pre>{_esc(text)}</pre></div>'


# ---------------------------------------------------------------- VegaChart


def _script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` breakout)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class VegaChart(CardComponent):
    """A chart from a Vega-Lite (or Vega) specification, drawn by the bundled vega-embed.

    Parameters
    ----------
    spec : dict
        The specification, e.g. ``{"mark": "bar", "data": {"values": [...]}, "encoding": {...}}``.
    show_controls : bool
        Show vega-embed's action menu (export as SVG/PNG).

    Example
    -------
    >>> chart = VegaChart({"mark": "point", "data": {"values": [{"x": 1}]}, "encoding": {"x": {"field": "x"}}})
    >>> 'class="rs-vega"' in chart.render()
    True
    """

    REALTIME_UPDATABLE = True

    def __init__(self, spec: dict[str, Any], show_controls: bool = False) -> None:
        self.spec = self._check(spec)
        self.show_controls = show_controls

    @staticmethod
    def _check(spec: Any) -> dict[str, Any]:
        if hasattr(spec, "to_dict") and not isinstance(spec, dict):  # an Altair chart
            spec = spec.to_dict()
        if not isinstance(spec, dict):
            raise TypeError(f"VegaChart takes a Vega-Lite spec as a dict, not {type(spec).__name__}")
        json.dumps(spec)  # fails now, in the step, rather than when the card renders
        return spec

    @classmethod
    def from_altair_chart(cls, altair_chart: Any) -> "VegaChart":
        """A chart of an Altair chart (its ``to_dict()`` spec)."""
        return cls(altair_chart.to_dict())

    def update(self, spec: dict[str, Any] | None = None) -> None:  # type: ignore[override]
        """Replace the specification."""
        if spec is not None:
            self.spec = self._check(spec)

    def render(self) -> str:
        options = {"actions": bool(self.show_controls)}
        return (f'<div class="rs-vega" data-options="{_esc(json.dumps(options))}"></div>'
                f'<script type="application/json" class="rs-vega-spec">{_script_json(self.spec)}</script>')


# ---------------------------------------------------------------- ProgressBar


class ProgressBar(CardComponent):
    """A progress bar; call :meth:`update` and ``current.card.refresh()`` while the task runs.

    Example
    -------
    >>> bar = ProgressBar(max=4, label="folds", unit="folds")
    >>> bar.update(3)
    >>> "3 / 4 folds" in bar.render()
    True
    """

    REALTIME_UPDATABLE = True

    def __init__(self, max: int | float = 100, label: str | None = None, value: int | float = 0,
                 unit: str | None = None, metadata: str | None = None) -> None:
        self.max = max
        self.label = label
        self.value = value
        self.unit = unit
        self.metadata = metadata

    def update(self, new_value: int | float, metadata: str | None = None) -> None:  # type: ignore[override]
        """Move the bar to ``new_value`` (and show ``metadata`` beside it)."""
        self.value = new_value
        if metadata is not None:
            self.metadata = metadata

    def render(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        label = f"<b>{_esc(self.label)}</b> " if self.label else ""
        meta = f' <span class="rs-note">{_esc(self.metadata)}</span>' if self.metadata else ""
        return (f'<div class="rs-progress">{label}<progress max="{_esc(self.max)}" value="{_esc(self.value)}">'
                f"</progress> <span>{_esc(self.value)} / {_esc(self.max)}{_esc(unit)}</span>{meta}</div>")


# ---------------------------------------------------------------- errors


class Error(CardComponent):
    """An error box: what a card shows in place of a component that failed to render.

    Example
    -------
    >>> Error("boom", "Traceback ...").render().startswith('<div class="rs-error">')
    True
    """

    def __init__(self, message: str, detail: str = "") -> None:
        self.message = message
        self.detail = detail

    def render(self) -> str:
        detail = f"<pre>{_esc(_cut(self.detail, 10_000))}</pre>" if self.detail else ""
        return f'<div class="rs-error"><b>{_esc(self.message)}</b>{detail}</div>'


def render_components(components: Iterable[Any]) -> tuple[str, list[str]]:
    """Render each component; a failing one becomes an :class:`Error` box. Returns (html, errors)."""
    import traceback

    parts, errors = [], []
    for component in components:
        try:
            if not hasattr(component, "render"):
                raise TypeError(f"{type(component).__name__} is not a card component (it has no render())")
            fragment = component.render()
            if not isinstance(fragment, str):
                raise TypeError(f"{type(component).__name__}.render() returned {type(fragment).__name__}, not str")
        except Exception as exc:  # noqa: BLE001 - a component never fails the card
            message = f"{type(component).__name__} failed to render: {type(exc).__name__}: {exc}"
            errors.append(message)
            fragment = Error(message, traceback.format_exc()).render()
        parts.append(f'<section class="rs-row">{fragment}</section>')
    return "".join(parts), errors
