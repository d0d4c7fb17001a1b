"""Cards in `runstore ui`: the task page frames each card in a sandbox, the card route has
its own restrictive CSP, and a real headless Chromium draws a default card and a chart
card — and runs a foreign card's script only in an opaque origin, never in the UI's.

Screenshots: ``RUNSTORE_UPDATE_SCREENSHOTS=1`` copies them into ``docs/cards/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from runstore import Store
from test_ui_browser import _chromium, _Server, expect, recording_page, save_shot

HERE = Path(__file__).resolve().parent
CARD_FLOW = HERE / "flows" / "card_flow.py"
DOCS_CARDS = HERE.parent / "docs" / "cards"

#: A card as someone else's file may carry it: script that tries to reach the page around it.
EVIL_CARD = """<!doctype html><html><head><title>evil</title></head><body><p id="t">a card from elsewhere</p>
<script>
document.body.setAttribute("data-ran", "1");
document.body.setAttribute("data-origin", String(window.origin));
try { window.parent.document.body.setAttribute("data-pwned", "parent"); }
catch (e) { document.body.setAttribute("data-parent-blocked", "1"); }
try { window.top.document.title = "pwned"; } catch (e) {}
try { document.cookie = "stolen=1"; document.body.setAttribute("data-cookie", String(document.cookie)); }
catch (e) { document.body.setAttribute("data-cookie-blocked", "1"); }
fetch("/api/cards/x").then(function () { document.body.setAttribute("data-fetched", "1"); })
  .catch(function () { document.body.setAttribute("data-fetch-blocked", "1"); });
</script></body></html>"""


def _card_store(db: Path, env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, str(CARD_FLOW), "--db", str(db), "run"], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _foreign_card_store(path: Path) -> str:
    """A store written by mallory (another RUNSTORE_HOME) whose task carries EVIL_CARD."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        from runstore import Store
        from storefill import add_run
        store = Store({str(path)!r})
        task_id = add_run(store, "Foreign", user="mallory")["tasks"]["start"]
        store.save_card(task_id, 0, card_id="evil", type="blank", attempt=0, status="done", html={EVIL_CARD!r})
        print(task_id)
    """)
    env = {**os.environ, "RUNSTORE_HOME": str(path.parent / "mallory-home"), "RUNSTORE_USER": "mallory"}
    out = subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120, capture_output=True, text=True)
    return out.stdout.strip()


def _task_path(store: Store, flow: str, step: str) -> str:
    rows = store.sql("SELECT run_number, task_id FROM tasks_view WHERE flow = ? AND step = ? ORDER BY task_id LIMIT 1",
                     [flow, step]).rows
    return f"{flow}/{rows[0][0]}/{step}/{rows[0][1]}"


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("cards-ui")
    env = {"RUNSTORE_HOME": str(home / ".rs"), "RUNSTORE_USER": "tester"}
    ours = home / "runstore.db"
    _card_store(ours, env)
    foreign_dir = tmp_path_factory.mktemp("foreign-cards")
    theirs = foreign_dir / "theirs.db"
    _foreign_card_store(theirs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNSTORE_HOME", env["RUNSTORE_HOME"])
        ours_store = Store(ours)
        theirs_store = Store(theirs, readonly=True)
        return {"ours": ours_store, "theirs": theirs_store,
                "start": _task_path(ours_store, "CardFlow", "start"),
                "train": _task_path(ours_store, "CardFlow", "train"),
                "evil": _task_path(theirs_store, "Foreign", "start")}


# ---------------------------------------------------------------- the server


def test_task_page_frames_cards_in_a_sandbox_and_the_card_route_has_its_own_csp(stores: dict[str, Any]) -> None:
    from starlette.testclient import TestClient

    from runstore.ui import create_app
    from runstore.ui.app import CARD_CSP, CSP

    client = TestClient(create_app(stores["ours"]))
    page = client.get(f"/run/{stores['train']}").text
    frames = [line for line in page.splitlines() if "<iframe" in line]
    assert len(frames) == 2
    for frame in frames:
        assert 'sandbox="allow-scripts"' in frame and "allow-same-origin" not in frame
    card = client.get(f"/card/{stores['train']}/1")
    assert card.status_code == 200 and "<h1>Model report</h1>" in card.text and "vegaEmbed" in card.text
    assert card.headers["content-security-policy"] == CARD_CSP
    assert "sandbox allow-scripts" in CARD_CSP and "connect-src 'none'" in CARD_CSP
    assert card.headers["x-frame-options"] == "SAMEORIGIN"
    assert client.get("/").headers["content-security-policy"] == CSP  # the app's own pages keep theirs
    assert client.get(f"/card/{stores['train']}/7").status_code == 404
    assert client.get(f"/card/{stores['train']}/x").status_code == 404
    api = client.get(f"/api/cards/{stores['train']}").json()
    assert api["done"] is True and [c["seq"] for c in api["cards"]] == [0, 1]


# ---------------------------------------------------------------- a real browser

@pytest.fixture(scope="module")
def site(stores: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    from runstore.ui import create_app

    ours = _Server(create_app(stores["ours"], allowed_hosts=["127.0.0.1"]))
    theirs = _Server(create_app(stores["theirs"], allowed_hosts=["127.0.0.1"]))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield {**stores, "ours_url": ours.url, "theirs_url": theirs.url, "browser": browser,
                   "shots": tmp_path_factory.mktemp("card-shots")}
        finally:
            browser.close()
            ours.stop()
            theirs.stop()


@pytest.fixture
def page(site: dict[str, Any]) -> Iterator[Any]:
    yield from recording_page(site["browser"], 1100)


def _shot(site: dict[str, Any], pg: Any, name: str) -> None:
    save_shot(site["shots"], pg, name, DOCS_CARDS)


@pytest.mark.browser
def test_browser_draws_the_default_card(site: dict[str, Any], page: Any) -> None:
    page.goto(f"{site['ours_url']}/card/{site['start']}/0")
    expect(page.locator("#rs-parameters")).to_contain_text("alpha")
    expect(page.locator("#rs-artifacts")).to_contain_text("tiny-forest")
    expect(page.locator("svg.rs-dag g.rs-here")).to_have_attribute("data-step", "start")
    _shot(site, page, "default-card")
    assert page.errors == []


@pytest.mark.browser
def test_browser_draws_a_blank_card_with_a_chart_inside_the_task_page(site: dict[str, Any], page: Any) -> None:
    page.goto(f"{site['ours_url']}/run/{site['train']}")
    report = page.frame_locator("#card-1 iframe")
    expect(report.locator("div.rs-vega")).to_have_attribute("data-rendered", "1")
    expect(report.locator("div.rs-vega svg path").first).to_be_visible()
    expect(report.locator("h1")).to_have_text("Model report")
    expect(page.frame_locator("#card-0 iframe").locator("progress")).to_have_attribute("value", "4")
    page.locator("#cards").scroll_into_view_if_needed()
    alone = site["browser"].new_page(viewport={"width": 900, "height": 700})
    try:
        alone.goto(f"{site['ours_url']}/card/{site['train']}/1")
        expect(alone.locator("div.rs-vega")).to_have_attribute("data-rendered", "1")
        _shot(site, alone, "blank-card-chart")
    finally:
        alone.close()
    assert page.errors == []


@pytest.mark.browser
def test_browser_a_standalone_card_file_draws_offline(site: dict[str, Any], page: Any, tmp_path: Path) -> None:
    from runstore.cards import get_cards
    from runstore import Task, namespace

    namespace(None)
    out = tmp_path / "report.html"
    get_cards(Task(site["train"], store=site["ours"]), id="report")[0].save(out)
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
    page.goto(out.as_uri())
    expect(page.locator("div.rs-vega")).to_have_attribute("data-rendered", "1")
    assert page.errors == []


@pytest.mark.browser
def test_browser_a_foreign_cards_script_never_runs_in_the_uis_origin(site: dict[str, Any], page: Any) -> None:
    page.goto(f"{site['theirs_url']}/run/{site['evil']}")
    title = page.title()
    frame = page.frame_locator("#card-0 iframe")
    body = frame.locator("body")
    # The card's script ran — in its own opaque origin, where it can reach nothing.
    expect(body).to_have_attribute("data-ran", "1")
    expect(body).to_have_attribute("data-origin", "null")
    expect(body).to_have_attribute("data-parent-blocked", "1")
    expect(body).to_have_attribute("data-cookie-blocked", "1")
    expect(body).to_have_attribute("data-fetch-blocked", "1")
    assert page.locator("body").get_attribute("data-pwned") is None
    assert page.title() == title != "pwned"
    assert page.context.cookies() == []
    # Opened on its own (no frame), the card's CSP still sandboxes it.
    page.goto(f"{site['theirs_url']}/card/{site['evil']}/0")
    expect(page.locator("body")).to_have_attribute("data-origin", "null")
    expect(page.locator("body")).to_have_attribute("data-fetch-blocked", "1")
