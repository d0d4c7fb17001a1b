"""Layouts drawn server-side as SVG: the run's DAG and the timeline of its tasks.

Both return plain numbers and names; the templates turn them into SVG (autoescaped),
so no JavaScript and no inline style is needed to draw them.

Example
-------
>>> layout = dag_layout({"start": {"next": ["end"]}, "end": {"next": []}}, "start", {})
>>> [(n["name"], n["layer"]) for n in layout["nodes"]]
[('start', 0), ('end', 1)]
"""

from __future__ import annotations

from typing import Any

__all__ = ["dag_layout", "timeline_layout"]

NODE_W, NODE_H, GAP_X, GAP_Y = 150, 40, 30, 50


def dag_layout(steps: dict[str, dict[str, Any]], start: str,
               status: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Layered layout: a step sits one layer below its deepest parent (back edges ignored).

    ``status`` is :func:`runstore.ui.data.step_summary`'s output (steps never run are
    ``pending``). Returns nodes with x/y/w/h, edges as point lists, and the canvas size.
    A step with ``"switch": {case: step}`` draws its edges as switch edges (``switch``
    true, ``case`` the case name(s)): only one of them is taken in a run.

    Example
    -------
    >>> layout = dag_layout({"a": {"next": ["b", "c"]}, "b": {"next": []}, "c": {"next": []}}, "a", {})
    >>> layout["width"] > layout["height"]
    True
    """
    # Depth-first from start to find back edges (switch loops), then longest-path layers.
    order: list[str] = []
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        stack = [(name, iter(steps[name]["next"]))]
        state[name] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                order.append(node)
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(steps[child]["next"])))

    visit(start)
    for name in steps:  # steps not reachable from start still get drawn
        if name not in state:
            visit(name)
    layer: dict[str, int] = {}
    for name in reversed(order):  # reverse post-order: parents before children
        layer.setdefault(name, 0)
        for child in steps[name]["next"]:
            if (name, child) not in back:
                layer[child] = max(layer.get(child, 0), layer[name] + 1)
    rows: dict[int, list[str]] = {}
    for name in reversed(order):
        rows.setdefault(layer[name], []).append(name)
    widest = max(len(r) for r in rows.values())
    width = widest * (NODE_W + GAP_X) + GAP_X
    nodes: dict[str, dict[str, Any]] = {}
    for depth, names in rows.items():
        offset = (width - len(names) * (NODE_W + GAP_X) + GAP_X) / 2
        for i, name in enumerate(names):
            info = status.get(name, {})
            nodes[name] = {"name": name, "layer": depth, "x": offset + i * (NODE_W + GAP_X),
                           "y": GAP_Y / 2 + depth * (NODE_H + GAP_Y), "w": NODE_W, "h": NODE_H,
                           "status": info.get("status", "pending"), "tasks": info.get("tasks", 0),
                           "foreach": bool(steps[name].get("foreach"))}
    edges = []
    for name in steps:
        cases = steps[name].get("switch")
        cases = cases if isinstance(cases, dict) else None
        for child in steps[name]["next"]:
            a, b = nodes[name], nodes[child]
            up = (name, child) in back
            case = ", ".join(str(k) for k, v in cases.items() if v == child) if cases else ""
            edges.append({"x1": a["x"] + NODE_W / 2, "y1": a["y"] + (0 if up else NODE_H),
                          "x2": b["x"] + NODE_W / 2, "y2": b["y"] + (NODE_H if up else 0), "back": up,
                          "switch": cases is not None, "case": case})
    height = len(rows) * (NODE_H + GAP_Y)
    return {"nodes": sorted(nodes.values(), key=lambda n: (n["layer"], n["x"])), "edges": edges,
            "width": width, "height": height}


def timeline_layout(tasks: list[dict[str, Any]], attempts: dict[int, list[dict[str, Any]]],
                    now: float, width: int = 900) -> dict[str, Any]:
    """Gantt rows: one per task, a bar per attempt (earlier attempts from ``attempts``).

    Times are epoch seconds; a task still running extends to ``now``.

    Example
    -------
    >>> t = timeline_layout([{"task_id": 1, "step": "a", "status": "succeeded", "created_ts": 0.0,
    ...                       "finished_ts": 2.0, "attempt": 0}], {}, now=2.0)
    >>> t["rows"][0]["bars"][0]["w"]
    900.0
    """
    if not tasks:
        return {"rows": [], "width": width, "height": 0, "span": 0.0, "label_w": 0}
    row_h = 14 if len(tasks) <= 200 else 6
    begin = min(t["created_ts"] for t in tasks)
    ends = [t["finished_ts"] or now for t in tasks]
    for tries in attempts.values():
        ends += [a["finished_at"] or now for a in tries]
    span = max(max(ends) - begin, 1e-6)
    scale = width / span
    rows = []
    for i, task in enumerate(tasks):
        bars = []
        for a in attempts.get(task["task_id"], []):
            start = a["started_at"] or task["created_ts"]
            end = a["finished_at"] or now
            bars.append({"x": (start - begin) * scale, "w": max((end - start) * scale, 1.0),
                         "status": a["status"] or "running", "attempt": a["attempt"]})
        if not bars:
            end = task["finished_ts"] or now
            bars.append({"x": (task["created_ts"] - begin) * scale,
                         "w": max((end - task["created_ts"]) * scale, 1.0),
                         "status": task["status"], "attempt": task["attempt"]})
        rows.append({"task_id": task["task_id"], "step": task["step"], "y": i * row_h, "h": row_h - 2,
                     "bars": bars, "label": f"{task['step']}/{task['task_id']}"})
    return {"rows": rows, "width": width, "height": len(tasks) * row_h, "span": span,
            "row_h": row_h, "labels": row_h >= 12}
