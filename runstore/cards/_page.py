"""Card pages: one self-contained HTML document per card (no network, no external file).

The CSS and the small script that draws charts are inline. The chart libraries
(Vega, Vega-Lite, vega-embed and Vega's CSP-safe expression interpreter, ~850 KB,
shared with ``runstore ui`` from ``runstore/ui/static``) are *not* stored with each
card: a stored card carries the marker :data:`VEGA_MARKER` where they go, and
:func:`standalone` puts them in when the card is read. So a card costs the store only
its own content, and what ``get()``, ``card get`` and the UI hand out is one file that
works offline, opened from disk.

Example
-------
>>> from runstore.cards.components import Markdown
>>> page = card_page("F/1/start/2", "blank", [Markdown("# hi")])
>>> page.startswith("<!doctype html>") and "<h1>hi</h1>" in page
True
>>> VEGA_MARKER in page   # no chart, no libraries
False
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Iterable, Mapping

from .components import Error, render_components

__all__ = ["card_page", "card_page_errors", "error_page", "default_card_body", "standalone", "VEGA_MARKER"]

#: Where a stored card wants the chart libraries inlined (see :func:`standalone`).
VEGA_MARKER = "<!-- runstore:vega-libraries -->"
_STATIC = Path(__file__).resolve().parent.parent / "ui" / "static"
_LIBRARIES = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js", "vega-interpreter.js")

_CSS = """
:root { --fg: #1d2330; --muted: #6b7385; --line: #d9dde5; --soft: #f4f6f9; --ok: #2e8b57; --bad: #c8372d;
        --run: #1f6fd1; --wait: #9aa1ad; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #fff; }
main.rs-card { max-width: 1100px; margin: 0 auto; padding: 16px 20px 32px; }
.rs-head { color: var(--muted); font-size: 12px; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
.rs-row { margin: 12px 0; }
h1 { font-size: 22px; } h2 { font-size: 17px; border-bottom: 1px solid var(--line); padding-bottom: .2em; }
table.rs-table, table.rs-kv { border-collapse: collapse; font-size: 13px; }
.rs-table th, .rs-table td, .rs-kv th, .rs-kv td { padding: 3px 8px; border-bottom: 1px solid var(--line);
        text-align: left; vertical-align: top; }
.rs-table thead th, .rs-kv th { background: var(--soft); font-weight: 600; }
pre { background: var(--soft); padding: 6px 8px; overflow: auto; max-height: 360px; margin: 4px 0; font-size: 12px; }
code { background: var(--soft); padding: 0 3px; }
.rs-note { color: var(--muted); }
.rs-image img { max-width: 100%; } .rs-image figcaption { color: var(--muted); font-size: 12px; }
.rs-progress progress { width: 320px; vertical-align: middle; }
.rs-error { border: 1px solid var(--bad); border-left-width: 4px; padding: 6px 10px; color: var(--bad); }
.rs-error pre { color: var(--fg); }
blockquote { border-left: 3px solid var(--line); margin: 0; padding-left: 10px; color: var(--muted); }
svg.rs-dag rect { fill: #fff; stroke: var(--wait); stroke-width: 1.5; }
svg.rs-dag .rs-here rect { fill: #e8f0fc; stroke: var(--run); stroke-width: 3; }
svg.rs-dag text { font-size: 12px; text-anchor: middle; fill: var(--fg); }
svg.rs-dag line { stroke: var(--wait); stroke-width: 1.5; }
.rs-status { display: inline-block; padding: 0 .5em; border-radius: 8px; color: #fff; background: var(--wait); }
.rs-status-done, .rs-status-succeeded { background: var(--ok); } .rs-status-running { background: var(--run); }
.rs-status-failed, .rs-status-error { background: var(--bad); } .rs-status-interrupted { background: #7a4fb5; }
"""

# Draws every chart of the page with vega-embed. ``ast`` + the interpreter: no eval,
# so charts also draw under the UI's card CSP (no 'unsafe-eval').
_CHART_SCRIPT = """
<script>
(function () {
  if (typeof vegaEmbed === "undefined") { return; }
  document.querySelectorAll("div.rs-vega").forEach(function (el) {
    var spec = JSON.parse(el.nextElementSibling.textContent);
    var opts = JSON.parse(el.getAttribute("data-options") || "{}");
    vegaEmbed(el, spec, { actions: !!opts.actions, renderer: "svg", ast: true, expr: vega.expressionInterpreter })
      .then(function () { el.setAttribute("data-rendered", "1"); })
      .catch(function (err) { el.textContent = "cannot draw the chart: " + err; el.className = "rs-error"; });
  });
})();
</script>"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _document(title: str, head: str, body: str) -> str:
    charts = 'class="rs-vega"' in body
    head = f"<p class=\"rs-head\">{head}</p>" if head else ""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_esc(title)}</title>"
            f"<style>{_CSS}</style></head><body><main class=\"rs-card\">"
            f"{head}{body}</main>"
            + (VEGA_MARKER + _CHART_SCRIPT if charts else "") + "</body></html>\n")


def card_page(pathspec: str, card_type: str, components: Iterable[Any], *, card_id: str | None = None,
              before: str = "", status: str = "done") -> str:
    """The card document of ``components`` (after ``before``, e.g. a default card's sections).

    The messages of components that failed come from :func:`card_page_errors`.
    """
    page, _ = card_page_errors(pathspec, card_type, components, card_id=card_id, before=before, status=status)
    return page


def card_page_errors(pathspec: str, card_type: str, components: Iterable[Any], *, card_id: str | None = None,
                     before: str = "", status: str = "done") -> tuple[str, list[str]]:
    """``(html, errors)``: the card document and the messages of components that failed."""
    body, errors = render_components(components)
    if card_type != "default":
        # A blank card is only what the step put in it: no pathspec, no status, so the
        # same report made by two tasks is the same blob, stored once.
        return _document(f"{card_id or card_type} card", "", body), errors
    label = f"{card_type} card" + (f" <b>{_esc(card_id)}</b>" if card_id else "")
    head = (f"{_esc(pathspec)} · {label} · <span class=\"rs-status rs-status-{_esc(status)}\">"
            f"{_esc('live' if status == 'running' else status)}</span>")
    return _document(f"{pathspec} {card_type} card", head, before + body), errors


def error_page(pathspec: str, card_type: str, card_id: str | None, message: str, detail: str = "") -> str:
    """What is stored in place of a card whose rendering failed (timeout, error)."""
    head = f"{_esc(pathspec)} · {_esc(card_type)} card" + (f" <b>{_esc(card_id)}</b>" if card_id else "")
    return _document(f"{pathspec} card error", head, Error(f"The card could not be rendered: {message}", detail).render())


def standalone(stored_html: str) -> str:
    """A stored card as one self-contained file: the chart libraries put in at the marker.

    Example
    -------
    >>> standalone("<p>no charts</p>")
    '<p>no charts</p>'
    """
    if VEGA_MARKER not in stored_html:
        return stored_html
    scripts = "".join(f"<script>{(_STATIC / name).read_text('utf-8')}</script>\n" for name in _LIBRARIES)
    # Only the first marker: a card's own content cannot make a reader inline them twice.
    return stored_html.replace(VEGA_MARKER, scripts, 1)


# ---------------------------------------------------------------- the default card


def _dag_svg(graph: Mapping[str, Any] | None, here: str) -> str:
    from ..dag import dag_layout

    steps_info = (graph or {}).get("steps")
    if not isinstance(steps_info, dict) or not steps_info:
        return '<p class="rs-note">no graph stored with this run</p>'
    steps = {str(n): {"next": [str(x) for x in (v.get("next") or []) if str(x) in steps_info],
                      "foreach": v.get("foreach")} for n, v in steps_info.items() if isinstance(v, dict)}
    start = (graph or {}).get("start_step")
    layout = dag_layout(steps, start if start in steps else next(iter(steps)), {})
    parts = [f'<svg class="rs-dag" width="{layout["width"]}" height="{layout["height"]}" '
             f'viewBox="0 0 {layout["width"]} {layout["height"]}" role="img" aria-label="the flow\'s steps">']
    for e in layout["edges"]:
        parts.append(f'<line x1="{e["x1"]}" y1="{e["y1"]}" x2="{e["x2"]}" y2="{e["y2"]}"/>')
    for n in layout["nodes"]:
        mark = ' class="rs-here" data-here="1"' if n["name"] == here else ""
        parts.append(f'<g{mark} data-step="{_esc(n["name"])}"><rect x="{n["x"]}" y="{n["y"]}" width="{n["w"]}" '
                     f'height="{n["h"]}" rx="6"/><text x="{n["x"] + n["w"] / 2}" y="{n["y"] + 25}">'
                     f'{_esc(n["name"][:20])}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _preview_html(p: Any) -> str:
    out = []
    if p.facts:
        out.append('<p class="rs-note">' + " · ".join(f"<b>{_esc(k)}</b> {_esc(v)}" for k, v in p.facts.items())
                   + "</p>")
    if p.note:
        out.append(f'<p class="rs-note">{_esc(p.note)}</p>')
    if p.table:
        columns, rows = p.table
        out.append('<table class="rs-table"><thead><tr>' + "".join(f"<th>{_esc(c)}</th>" for c in columns)
                   + "</tr></thead><tbody>" + "".join(
                       "<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in r) + "</tr>" for r in rows) + "</tbody></table>")
    if p.text:
        out.append(f"<pre>{_esc(p.text)}</pre>")
    return "".join(out)


def default_card_body(store: Any, task: Any, parameter_names: Iterable[str], graph: Mapping[str, Any] | None,
                      step: str, status: str) -> str:
    """The default card's sections: task facts, parameters, artifacts (safe previews), DAG.

    Previews come from :func:`runstore.preview.preview` (the same code as ``runstore
    ui``): nothing untrusted is unpickled.
    """
    from ..preview import preview

    params = set(parameter_names)
    rows_p, rows_a = [], []
    for artifact in sorted(task, key=lambda a: a.id):
        row = (f"<tr><th>{_esc(artifact.id)}</th><td>{_esc(artifact.type)}</td>"
               f"<td>{_preview_html(preview(store, artifact))}</td></tr>")
        (rows_p if artifact.id in params else rows_a).append(row)
    table = lambda rows, what: ('<table class="rs-kv"><thead><tr><th>name</th><th>type</th><th>value</th></tr>'  # noqa: E731
                                f"</thead><tbody>{''.join(rows)}</tbody></table>" if rows
                                else f'<p class="rs-note">no {what}</p>')
    facts = (f'<table class="rs-kv"><tr><th>task</th><td>{_esc(task.pathspec)}</td></tr>'
             f'<tr><th>status</th><td><span class="rs-status rs-status-{_esc(status)}">{_esc(status)}</span></td></tr>'
             f"</table>")
    return (f'<section class="rs-row"><h1>{_esc(task.pathspec)}</h1>{facts}</section>'
            f'<section class="rs-row" id="rs-parameters"><h2>Parameters</h2>{table(rows_p, "parameters")}</section>'
            f'<section class="rs-row" id="rs-artifacts"><h2>Artifacts</h2>{table(rows_a, "artifacts")}</section>'
            f'<section class="rs-row" id="rs-dag"><h2>DAG</h2>{_dag_svg(graph, step)}</section>')

