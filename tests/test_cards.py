"""Cards (SPEC §15, docs/cards.md): components, @card flows run as users run them, live
refresh watched from another process, failures that never fail the task, storage
(content-addressed, export → merge → resume, delete + gc) and the card commands."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runstore import FlowDefinitionError, Store, Task, namespace, step
from runstore.cards import (
    Artifact,
    CardComponentCollector,
    Image,
    Markdown,
    ProgressBar,
    Table,
    VegaChart,
    card,
    get_cards,
)

FLOWS = Path(__file__).parent / "flows"
CARD_FLOW = FLOWS / "card_flow.py"


def flow(db: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CARD_FLOW), "--db", str(db), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def runstore_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runstore", *args], capture_output=True, text=True, timeout=60)


def tasks(store: Store, run: str) -> dict[str, Task]:
    namespace(None)
    out = {}
    with store.read() as conn:
        for step_name, task_id in conn.execute(
                "SELECT s.name, t.task_id FROM tasks t JOIN steps s ON s.step_id = t.step_id JOIN runs r"
                " ON r.run_id = t.run_id JOIN flows f ON f.flow_id = r.flow_id WHERE f.name || '/' || r.run_number = ?",
                (run,)):
            out[step_name] = Task(f"{run}/{step_name}/{task_id}", store=store)
    return out


def count(store: Store, sql: str, *args: Any) -> int:
    with store.read() as conn:
        return conn.execute(sql, args).fetchone()[0]


@pytest.fixture(scope="module")
def card_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of tests/flows/card_flow.py with a failing component in its report card."""
    home = tmp_path_factory.mktemp("card-home")
    db = home / "runstore.db"
    env = {"RUNSTORE_HOME": str(home / ".rs"), "RUNSTORE_USER": "tester", "CARD_BOOM": "1", "CARD_SLOW": "1"}
    done = flow(db, "run", env=env)
    return {"db": db, "proc": done, "env": env}


# ---------------------------------------------------------------- components


def test_markdown_renders_and_escapes_everything() -> None:
    out = Markdown("# Title\n\nSome **bold**, *it*, `x<y`\n\n- a\n- b\n\n1. one\n\n```\n<b>code</b>\n```\n"
                   "[ok](https://example.org) [bad](javascript:alert(1)) <script>alert(1)</script>").render()
    assert "<h1>Title</h1>" in out and "<strong>bold</strong>" in out and "<em>it</em>" in out
    assert "<code>x&lt;y</code>" in out and "<ul><li>a</li><li>b</li></ul>" in out and "<ol><li>one</li></ol>" in out
    assert "<pre><code>&lt;b&gt;code&lt;/b&gt;</code></pre>" in out
    assert '<a href="https://example.org"' in out and "javascript:" not in out.split("bad")[0][-60:]
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert 'href="javascript' not in out


def test_table_of_rows_headers_nested_components_and_dataframe() -> None:
    import pandas as pd

    out = Table([["a", 1], ["<b>", Markdown("**x**")]], headers=["name", "n"]).render()
    assert "<th>name</th><th>n</th>" in out and "<td>&lt;b&gt;</td>" in out and "<strong>x</strong>" in out
    frame = pd.DataFrame({"x": [1, 2], "y": ["p", "<q>"]})
    for table in (Table(frame), Table.from_dataframe(frame)):
        html = table.render()
        assert "<th>x</th><th>y</th>" in html and "<td>&lt;q&gt;</td>" in html and html.count("<tr>") == 3
    big = Table.from_dataframe(pd.DataFrame({"x": range(1500)})).render()
    assert big.count("<tr>") == 1001 and "first 1,000 of 1,500 rows" in big
    updated = Table([[1]])
    updated.update([[2], [3]])
    assert updated.render().count("<tr>") == 2


def _png_of(data_url_html: str) -> bytes:
    return base64.b64decode(data_url_html.split("base64,")[1].split('"')[0])


def test_image_from_bytes_pil_and_matplotlib_figure() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image as PILImage

    pil = PILImage.new("RGB", (4, 3), (255, 0, 0))
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    raw = Image(buffer.getvalue(), label="raw <png>").render()
    assert 'src="data:image/png;base64,' in raw and "<figcaption>raw &lt;png&gt;</figcaption>" in raw
    from_pil = _png_of(Image.from_pil_image(pil).render())
    assert PILImage.open(io.BytesIO(from_pil)).size == (4, 3)
    assert _png_of(Image(pil).render()) == from_pil
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([1, 2, 3], [1, 4, 9])
    for component in (Image.from_matplotlib(fig, label="fig"), Image(fig), Image.from_matplotlib(ax)):
        png = _png_of(component.render())
        assert png.startswith(b"\x89PNG") and PILImage.open(io.BytesIO(png)).size[0] > 50
    plt.close(fig)
    with pytest.raises(ValueError, match="PNG, JPEG"):
        Image(b"not an image")
    with pytest.raises(TypeError, match="bytes, a PIL image or a matplotlib figure"):
        Image(42)


def test_artifact_vegachart_and_progressbar() -> None:
    assert "<pre>[1, &#x27;&lt;x&gt;&#x27;]</pre>" in Artifact([1, "<x>"], name="v").render()
    assert len(Artifact("y" * 50_000).render()) < 21_000
    spec = {"mark": "bar", "data": {"values": [{"a": "</script><script>alert(1)</script>"}]}}
    chart = VegaChart(spec).render()
    assert "</script><script>" not in chart.split('class="rs-vega-spec">')[1][:-len("</script>")]
    embedded = chart.split('class="rs-vega-spec">')[1].rsplit("</script>", 1)[0]
    assert json.loads(embedded) == spec
    with pytest.raises(TypeError):
        VegaChart("not a spec")  # type: ignore[arg-type]
    bar = ProgressBar(max=10, label="epochs", unit="ep")
    bar.update(7, metadata="loss 0.1")
    out = bar.render()
    assert 'max="10" value="7"' in out and "7 / 10 ep" in out and "loss 0.1" in out


def test_card_decorator_checks_its_options() -> None:
    with pytest.raises(FlowDefinitionError, match="type"):
        card(type="fancy")
    with pytest.raises(FlowDefinitionError, match="id"):
        card(id="no spaces")
    with pytest.raises(FlowDefinitionError, match="timeout"):
        card(timeout=0)

    with pytest.raises(FlowDefinitionError, match="two @card"):
        @card(id="a")
        @card(id="a")
        @step
        def start(self: Any) -> None:
            pass


def test_current_card_collector_targets_and_throttles_refresh() -> None:
    saved: list[tuple[int, str]] = []
    warnings: list[str] = []
    collector = CardComponentCollector(
        [{"type": "default"}, {"type": "blank", "id": "report", "refresh_interval": 60}],
        lambda slot, status: saved.append((slot.seq, status)), warnings.append)
    collector.append(Markdown("to the card without an id"))
    collector["report"].append(Markdown("to report"))
    collector["nope"].append(Markdown("dropped"))
    assert [len(c) for c in collector.components.values()] == [1, 1]
    assert warnings and "no @card(id='nope')" in warnings[0]
    for _ in range(20):
        collector.refresh()
    assert saved.count((1, "running")) == 1  # throttled to once per refresh_interval
    collector.refresh(force=True)
    assert saved.count((1, "running")) == 2


def test_current_card_only_with_the_decorator_and_import_runstore_stays_light() -> None:
    from runstore import current

    with pytest.raises(AttributeError, match="@card"):
        current.card  # noqa: B018
    code = ("import sys, runstore\nfrom runstore import current, FlowSpec, step\n"
            "print([m for m in ('runstore.cards', 'PIL', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_flow_without_cards_never_loads_them(tmp_path: Path) -> None:
    source = tmp_path / "plain.py"
    source.write_text(
        "import sys\nfrom runstore import FlowSpec, step\n"
        "class PlainFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.loaded = 'runstore.cards' in sys.modules\n        self.next(self.end)\n"
        "    @step\n    def end(self):\n        pass\n"
        "if __name__ == '__main__':\n    PlainFlow()\n")
    db = tmp_path / "runstore.db"
    proc = subprocess.run([sys.executable, str(source), "--db", str(db), "run"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    store = Store(db)
    assert tasks(store, "PlainFlow/1")["start"]["loaded"].data is False
    assert count(store, "SELECT count(*) FROM cards") == 0


# ---------------------------------------------------------------- a flow with cards


def test_several_cards_per_task_default_card_and_blank_card(card_run: dict[str, Any]) -> None:
    assert card_run["proc"].returncode == 0, card_run["proc"].stderr
    store = Store(card_run["db"])
    found = tasks(store, "CardFlow/1")
    start, train = found["start"], found["train"]
    (default,) = get_cards(start)
    assert (default.type, default.id, default.status) == ("default", None, "done")
    page = default.get()
    assert page.startswith("<!doctype html>") and "CardFlow/1/start/" in page
    assert "<th>alpha</th><td>float</td>" in page and "tiny-forest" in page and "0.86" in page
    assert 'class="rs-here" data-here="1" data-step="start"' in page and 'data-step="train"' in page
    cards = get_cards(train)
    assert [(c.id, c.type) for c in cards] == [("progress", "blank"), ("report", "blank")]
    assert [c.id for c in get_cards(train, id="report")] == ["report"]
    assert len(get_cards(train, type="default")) == 0
    report = get_cards(train, id="report")[0].get()
    assert "<h1>Model report</h1>" in report and "<td>accuracy</td><td>0.86</td>" in report
    # Self-contained: the chart libraries are in the file, nothing is loaded from elsewhere.
    assert "vegaEmbed" in report and len(report) > 800_000 and "<script src" not in report
    assert "4 / 4 folds" in get_cards(train, id="progress")[0].get()
    frame = cards[1]._repr_html_()
    assert frame.startswith('<iframe sandbox="allow-scripts" srcdoc="') and "allow-same-origin" not in frame
    assert "<iframe" in cards._repr_html_()


def test_a_failing_component_or_a_slow_card_never_fails_the_task(card_run: dict[str, Any]) -> None:
    store = Store(card_run["db"])
    assert "Done! CardFlow/1 succeeded." in card_run["proc"].stderr
    found = tasks(store, "CardFlow/1")
    report = get_cards(found["train"], id="report")[0]
    assert report.status == "done" and "this component fails on purpose" in (report.error or "")
    page = report.get()
    assert 'class="rs-error"' in page and "RuntimeError" in page and "<h1>Model report</h1>" in page
    assert "component(s) failed to render" in card_run["proc"].stderr
    (slow,) = get_cards(found["end"])  # Slow.render sleeps 30 s; @card(timeout=1)
    assert slow.status == "error" and "timeout=1" in (slow.error or "")
    assert "could not be rendered" in slow.get()
    assert found["end"].successful


def test_live_refresh_is_seen_from_another_process_while_the_task_runs(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    gate = tmp_path / "gate"
    env = {**os.environ, "CARD_GATE": str(gate)}
    proc = subprocess.Popen([sys.executable, str(CARD_FLOW), "--db", str(db), "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while not Path(str(gate) + ".reached").exists():
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        # This process is not the one running the flow: it reads the file like the UI does.
        store = Store(db, readonly=True)
        train = tasks(store, "CardFlow/1")["train"]
        (progress,) = get_cards(train, id="progress")
        assert progress.status == "running" and "2 / 4 folds" in progress.get()
        assert get_cards(train, id="report") and get_cards(train, id="report")[0].status == "running"
        assert train.finished_at is None
        gate.touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    (progress,) = get_cards(tasks(Store(db), "CardFlow/1")["train"], id="progress")
    assert progress.status == "done" and "4 / 4 folds" in progress.get()


def test_identical_cards_are_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    for _ in range(2):
        assert flow(db, "run").returncode == 0
    store = Store(db)
    first, second = (get_cards(tasks(store, f"CardFlow/{n}")["end"])[0] for n in (1, 2))
    assert first.hash == second.hash and first.pathspec != second.pathspec
    assert count(store, "SELECT count(*) FROM cards WHERE blob_key = ?", first.hash) == 2
    assert count(store, "SELECT count(*) FROM blobs WHERE blob_key = ?", first.hash) == 1
    report1, report2 = (get_cards(tasks(store, f"CardFlow/{n}")["train"], id="report")[0] for n in (1, 2))
    assert report1.hash == report2.hash  # same report, same blob (the libraries are not stored per card)
    assert store.value_size(report1.hash) < 20_000


def test_cards_survive_export_merge_resume_and_go_with_their_run(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    failed = flow(a, "run", env={"CARD_FAIL_END": "1"})
    assert failed.returncode == 1 and "end fails on purpose" in failed.stderr
    original = {step_name: [(x.id, x.hash) for x in get_cards(t)] for step_name, t in tasks(Store(a), "CardFlow/1").items()}
    assert original["train"] and original["start"]

    exported = runstore_cli("--db", str(a), "export", "CardFlow/1", "-o", str(b))
    assert exported.returncode == 0, exported.stderr
    Store(c).close()  # the colleague's own store, into which they merge
    merged = runstore_cli("--db", str(c), "merge", str(b))
    assert merged.returncode == 0, merged.stderr
    for db in (b, c):
        copied = {s: [(x.id, x.hash) for x in get_cards(t)] for s, t in tasks(Store(db), "CardFlow/1").items()}
        assert copied == original
    resumed = flow(c, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "Cloning previously run task CardFlow/1/train/" in resumed.stderr
    store = Store(c)
    clones = tasks(store, "CardFlow/2")
    assert [(x.id, x.hash) for x in get_cards(clones["train"])] == original["train"]
    assert [(x.id, x.hash) for x in get_cards(clones["start"])] == original["start"]
    assert "<h1>Model report</h1>" in get_cards(clones["train"], id="report")[0].get()
    assert get_cards(clones["end"])[0].status == "done"  # re-executed: a new card

    assert runstore_cli("--db", str(c), "gc").returncode == 0
    assert "<h1>Model report</h1>" in get_cards(clones["train"], id="report")[0].get()  # gc keeps card blobs
    cards_before = count(store, "SELECT count(*) FROM cards")
    assert runstore_cli("--db", str(c), "delete", "CardFlow/2", "--yes").returncode == 0
    assert count(store, "SELECT count(*) FROM cards") == cards_before - 4
    assert runstore_cli("--db", str(c), "delete", "CardFlow/1", "--yes").returncode == 0
    assert count(store, "SELECT count(*) FROM cards") == 0
    assert runstore_cli("--db", str(c), "gc").returncode == 0
    assert count(store, "SELECT count(*) FROM blobs") == 0


# ---------------------------------------------------------------- commands


def test_card_commands(card_run: dict[str, Any], tmp_path: Path) -> None:
    db = card_run["db"]
    listed = runstore_cli("--db", str(db), "card", "CardFlow/1/train", "--list")
    assert listed.returncode == 0 and listed.stdout.splitlines() == ["progress (blank, done)", "report (blank, done)"]
    out = tmp_path / "report.html"
    got = runstore_cli("--db", str(db), "card", "CardFlow/1/train", "--id", "report", "-o", str(out))
    assert got.returncode == 0, got.stderr
    assert "<h1>Model report</h1>" in out.read_text() and "vegaEmbed" in out.read_text()
    first = runstore_cli("--db", str(db), "card", "CardFlow/1/start")
    assert first.stdout.startswith("<!doctype html>") and "default card" in first.stdout
    missing = runstore_cli("--db", str(db), "card", "CardFlow/1/train", "--id", "nope")
    assert missing.returncode == 1 and missing.stderr.strip().splitlines() == [
        "Error: CardFlow/1/train/3 has no card with id 'nope' (its cards: progress (blank, done), report (blank, done))"]

    env = {"RUNSTORE_HOME": card_run["env"]["RUNSTORE_HOME"], "RUNSTORE_USER": "tester"}
    target = tmp_path / "got.html"
    assert flow(db, "card", "get", "train", str(target), "--id", "report", env=env).returncode == 0
    assert target.read_text() == out.read_text()
    viewed = flow(db, "card", "view", "1/start", "--no-browser", env=env)
    assert viewed.returncode == 0, viewed.stderr
    assert "default card" in Path(viewed.stdout.strip()).read_text()
    bad = flow(db, "card", "view", "1/start/x", env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("Error: expected STEP, RUN/STEP or RUN/STEP/TASK")
    unwritable = flow(db, "card", "get", "train", str(tmp_path / "no" / "such" / "dir.html"), env=env)
    assert unwritable.returncode == 1 and unwritable.stderr.startswith("Error: cannot write the card to")
