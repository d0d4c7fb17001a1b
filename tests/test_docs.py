"""The docs tell the truth: figures quoted from one source, examples that run as shown (issue #19)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"

# A measured figure: a number with a unit of time, size or ratio ("143 ms", "1.68 s", "11.7×").
FIGURE = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)\s?(ms|s|×|x|KiB|MiB|bytes)(?![\w])")


def _section(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


QUOTING = [
    ("README.md", "## Performance"),
    ("docs/flows.md", "## Performance"),
    ("docs/sql.md", "To *filter* runs by a parameter"),
]


@pytest.mark.parametrize(("page", "heading"), QUOTING, ids=[p for p, _ in QUOTING])
def test_docs_quote_figures_from_benchmarks_results(page: str, heading: str) -> None:
    """Every figure a page gives appears, as written, in benchmarks/RESULTS.md."""
    results = {f"{n}{' ' if u not in '×x' else ''}{u}" for n, u in FIGURE.findall(RESULTS.read_text("utf-8"))}
    section = _section(ROOT / page, heading)
    assert "benchmarks/RESULTS.md" in section, f"{page} does not name its source"
    quoted = {f"{n}{' ' if u not in '×x' else ''}{u}" for n, u in FIGURE.findall(section)}
    assert quoted, f"no figures found in {page}"
    assert not quoted - results, f"{page} quotes figures RESULTS.md does not have: {sorted(quoted - results)}"
