"""`runstore ui` in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

These run by default and in CI (``.ci/run`` installs chromium); a missing browser is a
failure, never a skip. One uvicorn server per store for the whole module, in a thread.
Each test screenshots the page it checks; ``RUNSTORE_UPDATE_SCREENSHOTS=1`` copies them
into ``docs/ui/`` (the committed pictures in docs/ui.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from runstore import Store
from uifill import add_live_task, demo_store, foreign_store, write_log

pytestmark = pytest.mark.browser

DOCS_UI = Path(__file__).resolve().parent.parent / "docs" / "ui"


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("the browser tests need Debian's chromium: apt-get install -y chromium "
                    "(.ci/run installs it)", pytrace=False)
    return path


class _Server:
    """uvicorn serving one app on a free loopback port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two servers (our demo store, a foreign one) and one headless Chromium."""
    chromium = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need playwright (pip install -e '.[test]')", pytrace=False)
    from runstore.ui import create_app

    home = tmp_path_factory.mktemp("browser-home")
    shots = tmp_path_factory.mktemp("screenshots")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNSTORE_HOME", str(home / ".runstore"))
        mp.setenv("RUNSTORE_USER", "tester")
        mp.chdir(home)
        demo = demo_store(tmp_path_factory.mktemp("demo") / "runstore.db")
        live = add_live_task(demo["store"])
        foreign_dir = tmp_path_factory.mktemp("foreign")
        foreign = foreign_store(foreign_dir / "theirs.db", foreign_dir / "MARKER")
    ours = _Server(create_app(demo["store"], allowed_hosts=["127.0.0.1"]))
    theirs = _Server(create_app(Store(foreign_dir / "theirs.db", readonly=True), allowed_hosts=["127.0.0.1"]))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield {"demo": demo, "live": live, "foreign": foreign, "ours": ours.url, "theirs": theirs.url,
                   "browser": browser, "shots": shots, "db": Path(str(demo["store"].path))}
        finally:
            browser.close()
            ours.stop()
            theirs.stop()


def recording_page(browser: Any, width: int) -> Iterator[Any]:
    """A fresh page that records console errors and page errors (CSP violations show there)."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    pg = context.new_page()
    pg.errors = []  # type: ignore[attr-defined]
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)  # type: ignore[attr-defined]
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))  # type: ignore[attr-defined]
    yield pg
    context.close()


def save_shot(shots: Path, pg: Any, name: str, docs: Path) -> None:
    """Screenshot ``pg`` into ``shots``; with RUNSTORE_UPDATE_SCREENSHOTS=1 also into ``docs``."""
    out = shots / f"{name}.png"
    pg.screenshot(path=str(out), full_page=True)
    if os.environ.get("RUNSTORE_UPDATE_SCREENSHOTS") == "1":
        docs.mkdir(exist_ok=True)
        shutil.copy(out, docs / f"{name}.png")


@pytest.fixture
def page(site: dict[str, Any]) -> Iterator[Any]:
    yield from recording_page(site["browser"], 1280)


def _shot(site: dict[str, Any], pg: Any, name: str) -> None:
    save_shot(site["shots"], pg, name, DOCS_UI)


def expect(locator: Any) -> Any:
    """Playwright's polling assertions (they never evaluate strings, which the CSP forbids)."""
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def _runs(pg: Any) -> list[str]:
    return pg.locator("a.runlink").all_inner_texts()


def test_runs_page_and_filter_by_tag(site: dict[str, Any], page: Any):
    demo = site["demo"]
    page.goto(site["ours"] + "/")
    assert _runs(page)[:4] == [site["live"]["pathspec"], demo["failed"], demo["better"], demo["good"]]
    page.select_option("#f-ns", "_all")
    page.click("#f-apply")
    assert demo["other_user"] in _runs(page)
    _shot(site, page, "runs")
    page.fill("#f-tags", "exp")
    page.click("#f-apply")
    assert _runs(page) == [demo["failed"], demo["better"]]
    assert page.errors == []


def test_click_a_parameter_header_to_sort_every_run_server_side(site: dict[str, Any], page: Any):
    demo = site["demo"]
    page.goto(site["ours"] + "/?tags=&status=")
    before = _runs(page)
    assert before[0] == site["live"]["pathspec"]  # newest first: the live run lacks alpha
    page.click("th.param a.sort:text-is('alpha')")
    expect(page.locator("th.param.sorted")).to_have_attribute("aria-sort", "descending")
    # alpha 0.5, 0.3, 0.1, then the run lacking alpha, across the whole first page
    assert _runs(page) == [demo["better"], demo["failed"], demo["good"], site["live"]["pathspec"]]
    assert "ns=tester" not in page.url and "ns=user%3Atester" in page.url and "status=" in page.url
    _shot(site, page, "runs-sorted")
    page.click("th.param a.sort:text-is('alpha')")
    expect(page.locator("th.param.sorted")).to_have_attribute("aria-sort", "ascending")
    assert _runs(page) == [demo["good"], demo["failed"], demo["better"], site["live"]["pathspec"]]
    page.select_option("#f-ns", "_all")
    page.click("#f-apply")  # the filters form keeps the sort
    assert _runs(page)[:4] == [demo["good"], demo["other_user"], demo["failed"], demo["better"]]
    page.click("#unsort")
    assert _runs(page)[0] == site["live"]["pathspec"] and "sort=" not in page.url
    assert page.errors == []


def test_open_a_run_see_the_dag_and_the_failed_step_and_read_its_log(site: dict[str, Any], page: Any):
    demo = site["demo"]
    page.goto(site["ours"] + "/?ns=_all")
    page.click(f"a.runlink >> text={demo['failed']}")
    page.wait_for_selector("#dag-svg")
    assert page.locator("#run-status").inner_text() == "failed"
    train = page.locator('#dag-svg a.dag-node[data-step="train"]')
    assert train.get_attribute("data-status") == "failed"
    assert "failed · 3 tasks" in train.text_content()
    assert page.locator('#dag-svg a.dag-node[data-step="start"]').get_attribute("data-status") == "succeeded"
    assert page.locator("#timeline-svg rect.bar.st-failed").count() == 1
    _shot(site, page, "run")
    page.click("a.failed-task")
    page.wait_for_selector("#exception")
    assert "fold 1 diverged" in page.locator("#exception").inner_text()
    assert "fold 1 epoch 2 loss" in page.locator("#log-stdout").inner_text()
    assert page.locator('#artifacts tr[data-kind="array"]').count() == 0  # the failed attempt kept none
    page.go_back()
    page.click("#step-train + table a >> nth=0")
    assert page.locator('#artifacts tr[data-kind="array"]').count() == 1
    assert "(3, 4)" in page.locator("#artifact-weights").inner_text()
    _shot(site, page, "task")
    assert page.errors == []


def test_compare_two_runs_highlights_the_differing_parameter_and_plots(site: dict[str, Any], page: Any):
    demo = site["demo"]
    page.goto(site["ours"] + "/?ns=_all")
    page.check(f'input[name="run"][value="{demo["good"]}"]')
    page.check(f'input[name="run"][value="{demo["better"]}"]')
    page.click("#compare-button")
    page.wait_for_selector("#compare-table")
    alpha = page.locator('tr[data-param="alpha"]')
    assert alpha.get_attribute("class") == "differs"
    assert page.locator('tr[data-param="epochs"]').get_attribute("class") == "same"
    highlighted = alpha.locator("td").first.evaluate("e => getComputedStyle(e).backgroundColor")
    plain = page.locator('tr[data-param="epochs"] td').first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert highlighted != plain
    page.wait_for_selector('#chart[data-rendered="2"] svg')
    assert page.locator("#chart svg .mark-symbol path, #chart svg .mark-line path").count() >= 1
    page.select_option("#plot-x", "p:alpha")
    page.wait_for_selector('#chart[data-rendered="2"] svg')
    _shot(site, page, "compare")
    assert page.errors == [], page.errors  # no CSP violation from Vega (no eval, no inline style)


def test_follow_a_running_tasks_log_as_it_grows(site: dict[str, Any], page: Any):
    live = site["live"]
    page.goto(site["ours"] + f"/run/{live['task']}")
    page.wait_for_selector("#live-badge")
    assert page.locator("#log-stdout").inner_text() == ""
    write_log(site["db"], live["task_id"], 0, "epoch 1 loss 0.9\n")
    expect(page.locator("#log-stdout")).to_contain_text("epoch 1", timeout=10_000)
    write_log(site["db"], live["task_id"], 0, "epoch 1 loss 0.9\nepoch 2 loss 0.5\n")
    expect(page.locator("#log-stdout")).to_contain_text("epoch 2", timeout=10_000)
    assert page.locator("#log-stdout").inner_text().count("epoch 1") == 1
    _shot(site, page, "live-log")
    site["demo"]["store"].finish_attempt(live["task_id"], 0, "succeeded",
                                         stdout="epoch 1 loss 0.9\nepoch 2 loss 0.5\ndone\n")
    expect(page.locator("#live-badge")).to_contain_text("finished (succeeded)", timeout=10_000)
    assert page.locator("#log-stdout").inner_text().rstrip().endswith("done")
    assert page.errors == []


def test_html_in_a_foreign_store_is_shown_as_text_never_run(site: dict[str, Any], page: Any):
    base = site["theirs"]
    page.goto(base + "/?ns=_all")
    page.click("a.runlink >> text=Foreign/1")
    page.wait_for_selector("#dag-svg")
    assert "<img src=x" in page.locator("#tags").inner_text()
    assert "<img src=x" in page.locator("#parameters").inner_text()
    page.click("#step-start + table a >> nth=0")
    assert "<img src=x" in page.locator("#artifact-html").inner_text()
    assert "<img src=x" in page.locator("#log-stdout").inner_text()
    untrusted = page.locator("#artifact-evil").inner_text()
    assert "not trusted" in untrusted and "runstore trust" in untrusted
    _shot(site, page, "foreign-task")
    for url in [base + "/?ns=_all", base + "/compare?run=Foreign/1", base + "/sql?q=SELECT+tag+FROM+tags_view"]:
        page.goto(url)
        assert page.title() != "pwned" and page.locator("img").count() == 0
    assert page.title() != "pwned" and page.locator("img").count() == 0
    assert not site["foreign"]["marker"].exists()


def test_sql_console_and_code_diff(site: dict[str, Any], page: Any):
    page.goto(site["ours"] + "/sql")
    page.fill("#sql-query", "SELECT pathspec, status, user_tags FROM runs_view ORDER BY created_ts DESC")
    page.click("#sql-run")
    page.wait_for_selector("#sql-result")
    assert site["demo"]["failed"] in page.locator("#sql-result").inner_text()
    assert "parameters_view" in page.locator("#views").inner_text()
    _shot(site, page, "sql")
    page.fill("#sql-query", "DROP TABLE runs")
    page.click("#sql-run")
    assert "only reading queries" in page.locator("#sql-error").inner_text()
    page.goto(site["ours"] + f"/run/{site['demo']['better']}/code?against={site['demo']['good']}")
    assert page.locator("#code-same").count() == 1  # same flow file in both runs
    _shot(site, page, "code")
    assert page.errors == []
