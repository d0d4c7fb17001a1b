"""`runstore ui` server side: every route through Starlette's TestClient, bad pathspecs,
a foreign store's pickle (never unpickled), HTML from a store (escaped), a store being
written while pages are read, and the command line. Browser tests: test_ui_browser.py."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, quote

import pytest

pytest.importorskip("starlette", reason="the ui extra is part of the test extra")
from starlette.testclient import TestClient  # noqa: E402

from runstore import Store  # noqa: E402
from runstore.ui import create_app  # noqa: E402
from runstore.ui.app import CSP, STATIC_DIR  # noqa: E402
from runstore.ui.data import RunsQuery, SortBy, list_runs, list_runs_sorted  # noqa: E402
from storefill import fill_run  # noqa: E402
from uifill import HOSTILE, add_live_task, demo_store, foreign_store, write_log  # noqa: E402

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One store of real runs for the module (built once: real flow runs take a second)."""
    home = tmp_path_factory.mktemp("demo-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNSTORE_HOME", str(home / ".runstore"))
        mp.setenv("RUNSTORE_USER", "tester")
        mp.chdir(home)
        info = demo_store(tmp_path_factory.mktemp("demo") / "runstore.db")
    yield info
    info["store"].close()


@pytest.fixture
def client(demo: dict[str, Any]) -> TestClient:
    return TestClient(create_app(demo["store"]))


def _main(html: str) -> str:
    return html[html.index("<main>"):]


# ------------------------------------------------------------------ runs page


def test_runs_page_lists_my_namespace_newest_first(client: TestClient, demo: dict[str, Any]):
    page = client.get("/")
    assert page.status_code == 200
    shown = re.findall(r'class="runlink" href="/run/([^"]+)"', page.text)
    assert shown == [demo["failed"], demo["better"], demo["good"]]  # not will's run: not in user:tester


def test_runs_page_global_namespace_and_filters(client: TestClient, demo: dict[str, Any]):
    everyone = re.findall(r'class="runlink" href="/run/([^"]+)"', client.get("/?ns=_all").text)
    assert everyone[0] == demo["other_user"] and len(everyone) == 4
    tagged = re.findall(r'class="runlink" href="/run/([^"]+)"', client.get("/?ns=_all&tags=exp").text)
    assert tagged == [demo["failed"], demo["better"]]
    will = re.findall(r'class="runlink" href="/run/([^"]+)"', client.get("/?ns=_all&user=will").text)
    assert will == [demo["other_user"]]
    failed = re.findall(r'class="runlink" href="/run/([^"]+)"', client.get("/?ns=_all&status=failed").text)
    assert failed == [demo["failed"]]
    oldest = re.findall(r'class="runlink" href="/run/([^"]+)"', client.get("/?ns=_all&order=oldest").text)
    assert oldest == everyone[::-1]
    assert client.get("/?ns=_all&flow=NoSuchFlow").text.count('class="runlink"') == 0
    as_namespace = re.findall(r'class="runlink" href="/run/([^"]+)"', client.get("/?ns_tag=baseline").text)
    assert as_namespace == [demo["good"]]
    assert client.get("/?status=bogus").status_code == 400


def test_runs_page_columns_are_chosen_parameters_and_results(client: TestClient):
    page = client.get("/?ns=_all").text
    headers = re.findall(r'<th class="(param|result)"><a class="sort"[^>]*>([^<]+)</a>', page)
    assert ("param", "alpha") in headers and ("result", "accuracy") in headers
    only = client.get("/?ns=_all&chosen=1&col=epochs").text
    assert re.findall(r'<th class="(param|result)"><a class="sort"[^>]*>([^<]+)</a>', only) == [("param", "epochs")]
    link = re.search(r'href="(/\?[^"]*sort=result:accuracy[^"]*)"', page).group(1).replace("&amp;", "&")
    by_acc = client.get(link).text
    accs = re.findall(r'<td class="result">([0-9.]+)</td>', by_acc)
    assert accs == sorted(accs, reverse=True) and len(accs) == 3
    by_alpha = client.get("/?ns=_all&sort=param:alpha&desc=1").text
    alphas = re.findall(r'<td class="param">([0-9.]+)</td>\s*<td class="param">3</td>', by_alpha)
    assert alphas == ["0.5", "0.3", "0.2", "0.1"]


def test_keyset_pagination_visits_every_run_once_even_with_equal_start_times(tmp_path: Path):
    store = Store(tmp_path / "runstore.db")
    for i in range(7):
        store.create_run("A" if i % 2 else "B", user="tester", user_tags=["t"])
    # Three runs share one start time: the cursor must not skip or repeat them.
    conn = sqlite3.connect(tmp_path / "runstore.db", isolation_level=None)
    conn.execute("UPDATE runs SET created_at = 1000.0 WHERE run_id IN (2, 3, 4)")
    conn.execute("UPDATE run_tags SET created_at = 1000.0 WHERE run_id IN (2, 3, 4)")
    conn.close()
    for query in (dict(), dict(namespace="user:tester"), dict(tags=["t"]), dict(oldest_first=True)):
        seen: list[int] = []
        cursor = None
        while True:
            page = list_runs(store, RunsQuery(limit=2, cursor=cursor, **query))
            seen += [r["run_id"] for r in page.rows]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == list(range(1, 8)) and len(seen) == 7, query


def test_runs_page_next_link_pages_through(tmp_path: Path):
    store = Store(tmp_path / "runstore.db")
    for _ in range(53):
        store.create_run("F", user="tester")
    client = TestClient(create_app(store))
    first = client.get("/").text
    assert first.count('class="runlink"') == 50
    link = re.search(r'href="([^"]+)" id="next-page"', first).group(1).replace("&amp;", "&")
    second = client.get(link).text
    assert re.findall(r'class="runlink" href="/run/([^"]+)"', second) == ["F/3", "F/2", "F/1"]
    assert 'id="next-page"' not in second and 'id="first-page"' in second
    assert client.get("/?after=nonsense").status_code == 400


def _sorted_store(path: Path) -> Store:
    """Runs of F whose ``x`` is a tie, a float, an int, a string, a boolean or missing, and one of G.

    Run number -> x: 1: 2, 2: 10, 3: 2.5, 4: "b", 5: (missing), 6: 2, 7: "a", 8: 2, 9: 1e-3,
    10: (missing), 11: True; G/1: x=0. Every 3rd run is tagged ``t``; results ``score`` = -x
    for numeric x. Runs 1, 6 and 8 (x = 2) share one start time.
    """
    store = Store(path)
    xs: list[Any] = [2, 10, 2.5, "b", None, 2, "a", 2, 1e-3, None, True]
    for i, x in enumerate(xs, start=1):
        number = isinstance(x, (int, float)) and not isinstance(x, bool)
        fill_run(store, "F", user="tester", tags=["t"] if i % 3 == 0 else [],
                 params={"x": x} if x is not None else {"other": 1},
                 artifacts={"end": {"score": -x}} if number else {})
    fill_run(store, "G", user="tester", params={"x": 0})
    conn = sqlite3.connect(path, isolation_level=None)
    ids = [r[0] for r in conn.execute("SELECT run_id FROM runs_view WHERE flow = 'F' AND run_number IN (1, 6, 8)")]
    conn.execute(f"UPDATE runs SET created_at = 1000.0 WHERE run_id IN ({','.join('?' * 3)})", ids)
    conn.execute(f"UPDATE run_tags SET created_at = 1000.0 WHERE run_id IN ({','.join('?' * 3)})", ids)
    conn.close()
    return store


def _all_pages(store: Store, q: RunsQuery, by: SortBy) -> list[str]:
    seen: list[str] = []
    while True:
        page = list_runs_sorted(store, q, by)
        seen += [r["pathspec"] for r in page.rows]
        if page.next_cursor is None:
            return seen
        by = SortBy(by.kind, by.name, by.descending, page.next_cursor)
        q = RunsQuery(**{**q.__dict__, "cursor": None})


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_sorting_by_a_parameter_ranks_every_matching_run_across_pages(tmp_path: Path, limit: int):
    store = _sorted_store(tmp_path / "runstore.db")
    q = RunsQuery(flow="F", limit=limit)
    # Numbers as numbers (True is 1), then strings; ties newest first (run id breaks equal
    # start times); runs lacking x last, newest first, in both directions.
    ascending = ["F/9", "F/11", "F/8", "F/6", "F/1", "F/3", "F/2", "F/7", "F/4", "F/10", "F/5"]
    assert _all_pages(store, q, SortBy("param", "x")) == ascending
    descending = ["F/4", "F/7", "F/2", "F/3", "F/8", "F/6", "F/1", "F/11", "F/9", "F/10", "F/5"]
    assert _all_pages(store, q, SortBy("param", "x", descending=True)) == descending
    oldest = RunsQuery(flow="F", limit=limit, oldest_first=True)
    assert _all_pages(store, oldest, SortBy("param", "x"))[2:5] == ["F/1", "F/6", "F/8"]
    assert _all_pages(store, oldest, SortBy("param", "x"))[-2:] == ["F/5", "F/10"]


def test_sorting_keeps_the_filters_and_sorts_results_too(tmp_path: Path):
    store = _sorted_store(tmp_path / "runstore.db")
    # Every flow: G/1 (x = 0) comes first; a tag keeps only runs 3, 6, 9.
    assert _all_pages(store, RunsQuery(limit=2), SortBy("param", "x"))[:2] == ["G/1", "F/9"]
    assert _all_pages(store, RunsQuery(flow="F", tags=["t"], limit=1), SortBy("param", "x")) == ["F/9", "F/6", "F/3"]
    assert _all_pages(store, RunsQuery(flow="F", namespace="user:nobody"), SortBy("param", "x")) == []
    assert _all_pages(store, RunsQuery(flow="Nope"), SortBy("param", "x")) == []
    # Scalar results of the end step: score = -x, runs without one last.
    scores = _all_pages(store, RunsQuery(flow="F", limit=2), SortBy("result", "score", descending=True))
    assert scores[:6] == ["F/9", "F/8", "F/6", "F/1", "F/3", "F/2"]
    assert set(scores[6:]) == {"F/4", "F/5", "F/7", "F/10", "F/11"}


def test_runs_page_sorts_server_side_and_its_links_keep_the_filters(tmp_path: Path):
    store = _sorted_store(tmp_path / "runstore.db")
    client = TestClient(create_app(store))
    first = client.get("/?ns=_all&flow=F&status=succeeded&tags=t&order=oldest").text
    link = re.search(r'href="(/\?[^"]*sort=param:x[^"]*)"', first).group(1).replace("&amp;", "&")
    query = parse_qs(link[2:])
    assert {k: query[k] for k in ("flow", "status", "tags", "order", "ns")} == {
        "flow": ["F"], "status": ["succeeded"], "tags": ["t"], "order": ["oldest"], "ns": ["_all"]}
    assert query["desc"] == ["1"]
    sorted_page = client.get(link).text
    assert re.findall(r'class="runlink" href="/run/([^"]+)"', sorted_page) == ["F/3", "F/6", "F/9"]
    assert 'aria-sort="descending"' in sorted_page and 'name="sort" value="param:x"' in sorted_page
    # The header link of the sorted column flips the direction, still with the filters.
    again = re.search(r'href="(/\?[^"]*sort=param:x[^"]*)"', sorted_page).group(1).replace("&amp;", "&")
    assert parse_qs(again[2:])["desc"] == ["0"] and parse_qs(again[2:])["tags"] == ["t"]
    # Pages of 50 through the next links, on 120 runs: each run once, in order.
    for i in range(109):
        fill_run(store, "H", user="tester", params={"x": i % 7} if i % 5 else {})
    seen: list[str] = []
    url = "/?ns=_all&flow=H&sort=param:x&desc=0"
    while url:
        html = client.get(url).text
        seen += re.findall(r'class="runlink" href="/run/([^"]+)"', html)
        found = re.search(r'href="([^"]+)" id="next-page"', html)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert len(seen) == 109 and len(set(seen)) == 109
    xs = {r["pathspec"]: r["parameters"].get("x") for r in list_runs(store, RunsQuery(flow="H", limit=200)).rows}
    values = [xs[p] for p in seen]
    assert values[:87] == sorted(values[:87]) and None not in values[:87] and values[87:] == [None] * 22
    for bad in ("/?sort=x", "/?sort=param:", "/?sort=param:x&after=nonsense", "/?sort=param:x&after=[1,2]",
                "/?sort=param:x&after=[1,2,true]", "/?sort=param:x&after=[1,2,99999999999999999999]",
                "/?sort=param:x&after=[NaN,2,3]"):
        assert client.get(bad).status_code == 400, bad


def test_a_hostile_parameter_name_as_sort_key_is_escaped(tmp_path: Path):
    store = Store(tmp_path / "theirs.db")
    fill_run(store, "Foreign", user="tester", params={"<script>": 2, "a'b\"c": 1})
    fill_run(store, "Foreign", user="tester", params={"<script>": 1})
    client = TestClient(create_app(Store(tmp_path / "theirs.db", readonly=True)))
    page = client.get("/?ns=_all").text
    assert "<script>" not in _main(page) and "&lt;script&gt;" in page
    link = re.search(r'href="(/\?[^"]*sort=param:%3Cscript%3E[^"]*)"', page).group(1).replace("&amp;", "&")
    sorted_page = client.get(link).text
    assert "<script>" not in _main(sorted_page)
    assert re.findall(r'class="runlink" href="/run/([^"]+)"', sorted_page) == ["Foreign/1", "Foreign/2"]
    quoted = client.get("/?ns=_all&sort=param:" + quote("a'b\"c") + "&desc=1").text
    assert re.findall(r'class="runlink" href="/run/([^"]+)"', quoted) == ["Foreign/1", "Foreign/2"]
    assert "a'b\"c" not in quoted and "a&#39;b&#34;c" in quoted


# ------------------------------------------------------------------ run and task pages


def test_run_page_shows_dag_with_step_status_timeline_and_failure(client: TestClient, demo: dict[str, Any]):
    page = client.get(f"/run/{demo['failed']}")
    assert page.status_code == 200
    nodes = dict(re.findall(r'data-step="([^"]+)" data-status="([^"]+)"', page.text))
    assert nodes == {"start": "succeeded", "train": "failed", "join": "pending", "end": "pending"}
    assert 'id="run-status">failed<' in page.text
    assert "fold 1 diverged" in page.text and 'class="failed-task"' in page.text
    assert page.text.count('class="bar st-') == 4  # start + three folds
    assert "<th>alpha</th><td>0.3</td>" in page.text
    assert 'id="code-link"' in page.text


def test_task_page_previews_artifacts_safely_and_shows_logs(client: TestClient, demo: dict[str, Any]):
    run = client.get(f"/run/{demo['good']}").text
    end = re.search(r'href="(/run/TrainFlow/1/end/\d+)"', run).group(1)
    page = client.get(end).text
    kinds = dict(re.findall(r'id="artifact-([^"]+)" data-kind="([^"]+)"', page))
    assert kinds["accuracy"] == "number" and kinds["summary"] == "json" and kinds["raw"] == "bytes"
    assert re.search(r"accuracy 0\.7\d", page)  # stdout
    assert 'id="cards-slot"' in page
    assert "script-name" in page  # metadata
    train = re.search(r'href="(/run/TrainFlow/1/train/\d+)"', run).group(1)
    page = client.get(train).text
    assert 'data-kind="array"' in page and "(3, 4)" in page and "float64" in page
    assert "fold 0 epoch 2 loss" in page or "epoch 2 loss" in page
    note = client.get(re.search(r'href="(/run/TrainFlow/1/start/\d+)"', run).group(1)).text
    assert "training with &lt;b&gt;alpha&lt;/b&gt;" in note


def test_trusted_pickles_preview_a_dataframe_head_or_repr(tmp_path: Path):
    import pandas as pd

    sys.path.insert(0, str(TESTS))
    from storefill import add_run

    store = Store(tmp_path / "runstore.db")
    ids = add_run(store, "F", model=pd.DataFrame({"a": [1, 2, 3], "b": ["x", "<y>", "z"]}))
    add_run(store, "F", model=(1, "two"))  # a tuple: pickled, written by this user
    client = TestClient(create_app(store))
    page = client.get(f"/run/F/1/start/{ids['tasks']['start']}").text
    assert 'id="artifact-model" data-kind="frame"' in page and "3 rows × 2 columns" in page
    assert "<td>&lt;y&gt;</td>" in page
    second = client.get("/run/F/2").text
    start = re.search(r'href="(/run/F/2/start/\d+)"', second).group(1)
    assert "(1, &#39;two&#39;)" in client.get(start).text


def test_task_page_attempts_and_exception(client: TestClient, demo: dict[str, Any]):
    run = client.get(f"/run/{demo['failed']}").text
    failed = re.search(r'class="failed-task" href="([^"]+)"', run).group(1)
    page = client.get(failed).text
    assert "RuntimeError" in page and "Traceback" in page and "fold 1 diverged" in page
    assert client.get(failed + "?attempt=0").status_code == 200
    assert client.get(failed + "?attempt=5").status_code == 404


def test_code_page_and_diff(tmp_path: Path):
    sys.path.insert(0, str(TESTS))
    from storefill import add_run

    store = Store(tmp_path / "runstore.db")
    add_run(store, "F", source="x = 1\n")
    add_run(store, "F", source="x = 2\n")
    client = TestClient(create_app(store))
    page = client.get("/run/F/2/code").text
    assert "x = 2" in page
    diff = client.get("/run/F/2/code?against=F/1").text
    assert '<span class="del">-x = 1</span>' in diff and '<span class="add">+x = 2</span>' in diff
    assert 'id="code-same"' in client.get("/run/F/1/code?against=F/1").text
    assert client.get("/run/F/2/code?against=F/99").status_code == 404


# ------------------------------------------------------------------ compare and SQL


def test_compare_highlights_differences_and_carries_plot_data(client: TestClient, demo: dict[str, Any]):
    page = client.get(f"/compare?run={demo['good']}&run={demo['better']}").text
    assert '<tr class="differs" data-param="alpha">' in page
    assert '<tr class="same" data-param="epochs">' in page
    assert '<tr class="differs" data-result="accuracy">' in page
    assert '<tr class="differs" data-tag="baseline">' in page
    data = json.loads(re.search(r'id="plot-data">(.*?)</script>', page, re.S).group(1))
    assert [d["number"] for d in data] == [1, 2] and data[1]["p:alpha"] == 0.5 and "r:accuracy" in data[0]
    assert 'src="/static/vega-embed.min.js"' in page
    assert 'id="compare-hint"' in client.get("/compare").text


def test_sql_console_reads_and_refuses_writes(client: TestClient):
    page = client.get("/sql", params={"q": "SELECT pathspec, status FROM runs_view ORDER BY run_id"}).text
    assert "TrainFlow/1" in page and 'id="sql-result"' in page
    assert "parameters_view" in page and "created_ts" in page  # the views beside the console
    refused = client.get("/sql", params={"q": "DELETE FROM runs"}).text
    assert 'id="sql-error"' in refused and "only reading queries" in refused
    bad = client.get("/sql", params={"q": "SELEC nonsense"}).text
    assert 'id="sql-error"' in bad
    big = client.get("/sql", params={"q": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                                          " WHERE i < 5000) SELECT i FROM n;"}).text
    assert big.count("<tr>") <= 1002 and "more not shown" in big


# ------------------------------------------------------------------ errors and headers


@pytest.mark.parametrize("url", [
    "/run/NoSuchFlow/1", "/run/TrainFlow/999", "/run/TrainFlow/abc", "/run/TrainFlow/1/start/999999",
    "/run/TrainFlow/1/start/abc", "/run/TrainFlow/99999999999999999999999", "/run/TrainFlow/1/nostep/1",
    "/compare?run=garbage", "/compare?run=TrainFlow/77", "/api/log/TrainFlow/1/start/999999", "/no/such/page",
    "/run/TrainFlow/1/code?against=bad",
])
def test_bad_pathspecs_get_a_404_page(client: TestClient, url: str):
    page = client.get(url)
    assert page.status_code == 404, page.text
    assert 'class="error-title"' in page.text and "Traceback" not in page.text


def test_every_response_has_a_strict_csp_and_no_inline_script(client: TestClient, demo: dict[str, Any]):
    for url in ["/", f"/run/{demo['good']}", f"/compare?run={demo['good']}&run={demo['better']}", "/sql",
                "/static/ui.js", "/run/Nope/1"]:
        response = client.get(url)
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        if response.headers["content-type"].startswith("text/html"):
            scripts = re.findall(r"<script([^>]*)>", response.text)
            assert all('src="/static/' in s or 'type="application/json"' in s for s in scripts), scripts
            assert " style=" not in response.text and "<style" not in response.text
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP


def test_static_assets_are_bundled_in_the_package(client: TestClient):
    for name in ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js", "vega-interpreter.js", "ui.js", "ui.css",
                 "LICENSE.vega.txt", "LICENSE.vega-lite.txt", "LICENSE.vega-embed.txt", "LICENSE.vega-interpreter.txt"):
        assert (STATIC_DIR / name).is_file(), name
        assert client.get(f"/static/{name}").status_code == 200
    page = client.get("/").text
    assert "http://" not in page.replace("http://127.0.0.1", "") and "https://" not in page


def test_the_wheel_ships_templates_and_static_files(tmp_path: Path):
    # Built the way pip installs it (an isolated build of setup.cfg), from a copy of the
    # sources so that the build leaves nothing in the checkout.
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(TESTS.parent / name, src / name)
    shutil.copytree(TESTS.parent / "runstore", src / "runstore", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"),
                    str(src)], check=True, timeout=300, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("runstore-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("runstore/ui/static/vega.min.js", "runstore/ui/static/vega-lite.min.js",
                   "runstore/ui/static/LICENSE.vega.txt", "runstore/ui/static/ui.js",
                   "runstore/ui/templates/run.html", "runstore/ui/templates/base.html"):
        assert needed in names, needed


def test_host_header_is_checked_when_bound_to_loopback(demo: dict[str, Any]):
    app = create_app(demo["store"], allowed_hosts=["127.0.0.1", "localhost"])
    assert TestClient(app, base_url="http://127.0.0.1:8765").get("/").status_code == 200
    assert TestClient(app, base_url="http://evil.example:8765").get("/").status_code == 400


# ------------------------------------------------------------------ tag edits


def test_tag_edits_are_refused_unless_allowed(client: TestClient, demo: dict[str, Any]):
    response = client.post(f"/run/{demo['good']}/tags", data={"add": "x"})
    assert response.status_code == 403 and "--allow-tag-edits" in response.text
    assert 'id="tag-form"' not in client.get(f"/run/{demo['good']}").text


def test_tag_edits_with_allow_and_the_page_token(tmp_path: Path):
    store = Store(tmp_path / "runstore.db")
    store.create_run("F", user="tester", user_tags=["old"])
    client = TestClient(create_app(store, allow_tag_edits=True), follow_redirects=False)
    page = client.get("/run/F/1").text
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    assert client.post("/run/F/1/tags", data={"add": "new", "token": "forged"}).status_code == 403
    done = client.post("/run/F/1/tags", data={"add": "new more", "remove": "old", "token": token})
    assert done.status_code == 303 and done.headers["location"] == "/run/F/1#tags"
    assert store.sql("SELECT user_tags FROM runs_view").rows == [('["more","new"]',)]
    bad = client.post("/run/F/1/tags", data={"add": "x" * 600, "token": token})
    assert bad.status_code == 400 and "Traceback" not in bad.text and 'class="error-message"' in bad.text


# ------------------------------------------------------------------ hostile stores


def test_foreign_pickle_is_never_unpickled_and_says_how_to_trust(tmp_path: Path):
    info = foreign_store(tmp_path / "theirs.db", tmp_path / "MARKER")
    store = Store(tmp_path / "theirs.db", readonly=True)
    client = TestClient(create_app(store))
    run = client.get("/run/Foreign/1").text
    start = re.search(r'href="(/run/Foreign/1/start/\d+)"', run).group(1)
    page = client.get(start).text
    assert 'id="artifact-evil" data-kind="untrusted"' in page
    assert "not trusted" in page and f"runstore trust {tmp_path / 'theirs.db'}" in page
    for url in ["/?ns=_all", "/run/Foreign/1", start, "/compare?run=Foreign/1", "/sql?q=SELECT+*+FROM+artifacts_view"]:
        assert client.get(url).status_code == 200
    assert not info["marker"].exists()


def test_html_from_a_foreign_store_is_escaped(tmp_path: Path):
    foreign_store(tmp_path / "theirs.db", tmp_path / "MARKER")
    client = TestClient(create_app(Store(tmp_path / "theirs.db", readonly=True)))
    run = client.get("/run/Foreign/1").text
    start = re.search(r'href="(/run/Foreign/1/start/\d+)"', run).group(1)
    pages = [client.get("/?ns=_all").text, run, client.get(start).text,
             client.get("/compare?run=Foreign/1").text, client.get("/sql?q=SELECT+tag+FROM+tags_view").text]
    for page in pages:
        assert "<img src=x" not in page and "<script>document" not in page
        assert "&lt;img src=x" in page or "&lt;img src=x" in page.replace("&#34;", '"')
    log = client.get(f"/api/log/{start[5:]}?stream=stdout").json()
    assert log["text"].startswith("<img")  # JSON for textContent, never HTML


# ------------------------------------------------------------------ live logs and concurrent writers


def test_log_endpoint_follows_a_running_attempt(tmp_path: Path):
    db = tmp_path / "runstore.db"
    store = Store(db)
    live = add_live_task(store)
    client = TestClient(create_app(store))
    page = client.get(f"/run/{live['task']}").text
    assert 'id="live-badge"' in page and "data-live=" in page
    url = f"/api/log/{live['task']}?stream=stdout"
    first = client.get(url + "&offset=0").json()
    assert first == {"text": "", "offset": 0, "reset": False, "done": False, "status": "running"}
    write_log(db, live["task_id"], 0, "line 1\n")
    grown = client.get(url + "&offset=0").json()
    assert grown["text"] == "line 1\n" and not grown["done"]
    write_log(db, live["task_id"], 0, "line 1\nline 2\n")
    more = client.get(url + f"&offset={grown['offset']}").json()
    assert more["text"] == "line 2\n"
    store.finish_attempt(live["task_id"], 0, "succeeded", stdout="line 1\nline 2\nline 3\n")
    last = client.get(url + f"&offset={more['offset']}").json()
    assert last["text"] == "line 3\n" and last["done"] and last["status"] == "succeeded"
    assert client.get(url + "&offset=999").json()["reset"] is True
    assert client.get(url.replace("stdout", "bogus")).status_code == 400


_WRITER = """
import sys
sys.path.insert(0, {tests!r})
from runstore import Store
from storefill import fill_run
store = Store({db!r})
for i in range(10_000):
    fill_run(store, "Busy", user="tester", params={{"i": i}}, steps=("start", "end"))
"""


def test_pages_stay_correct_while_another_process_writes(tmp_path: Path):
    db = tmp_path / "runstore.db"
    store = Store(db)
    store.create_run("Busy", user="tester")
    writer = subprocess.Popen([sys.executable, "-c", _WRITER.format(tests=str(TESTS), db=str(db))],
                              stderr=subprocess.PIPE)
    try:
        client = TestClient(create_app(Store(db, readonly=True)))
        deadline = time.time() + 4
        counts = []
        while time.time() < deadline:
            page = client.get("/?ns=_all")
            assert page.status_code == 200
            counts.append(page.text.count('class="runlink"'))
            newest = re.search(r'class="runlink" href="/run/([^"]+)"', page.text).group(1)
            assert client.get(f"/run/{newest}").status_code == 200
            assert client.get("/sql?q=SELECT+count(*)+FROM+runs_view").status_code == 200
        assert counts[-1] > 1, "the writer never got a run in"
        assert writer.poll() is None, writer.stderr.read().decode() if writer.stderr else ""
    finally:
        writer.kill()
        writer.wait()


# ------------------------------------------------------------------ the command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "exited")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_python_m_runstore_ui_serves_and_stops_on_ctrl_c(tmp_path: Path):
    db = tmp_path / "runstore.db"
    Store(db).create_run("HelloFlow", user="tester")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "runstore", "--db", str(db), "ui", "--port", str(port)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        page = _wait_for(f"http://127.0.0.1:{port}/", proc)
        assert "HelloFlow/1" in page
        # while it serves, notebook displays of this store can link to it (client/_display.py)
        from runstore import Run
        from runstore.util import running_ui_url

        assert running_ui_url(str(db.resolve())) == f"http://127.0.0.1:{port}/"
        html = Run("HelloFlow/1", store=Store(db, readonly=True))._repr_html_()
        assert f'<a href="http://127.0.0.1:{port}/run/HelloFlow/1">HelloFlow/1</a>' in html
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode()
    assert f"http://127.0.0.1:{port}/ (read-only)" in err and "Traceback" not in err
    assert running_ui_url(str(db.resolve())) is None  # the registration went with the server


def test_another_host_prints_a_warning(tmp_path: Path):
    db = tmp_path / "runstore.db"
    Store(db).create_run("HelloFlow", user="tester")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "runstore", "--db", str(db), "ui", "--host", "0.0.0.0",
                             "--port", str(port)], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for(f"http://127.0.0.1:{port}/", proc)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert "Warning: serving on 0.0.0.0" in proc.stderr.read().decode()


def test_ui_without_a_store_is_one_line_error(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "runstore", "--db", str(tmp_path / "none.db"), "ui"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.startswith("Error: no store at")


def test_non_loopback_host_is_refused_unless_explicit():
    from runstore.errors import RunstoreError
    from runstore.ui import check_host

    with pytest.raises(RunstoreError, match="--host 0.0.0.0"):
        check_host("0.0.0.0", explicit=False)
    assert check_host("localhost", explicit=False) is None


def test_the_ui_package_uses_only_public_surfaces_and_no_click():
    """runstore/ui reads through the Store facade, the client and the SQL views; the CLI
    imports it only when `runstore ui` runs, so `runstore` commands never load Starlette."""
    import ast

    package = TESTS.parent / "runstore" / "ui"
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            for name in names:
                assert not name.startswith(("click", "sqlite3", "..store._", "runstore.store._", "..runtime",
                                            "..client._", ".._clickutil")), f"{path.name} imports {name}"
                assert name not in ("..cli", "runstore.cli"), f"{path.name} imports {name}"
    code = "import sys, runstore.cli, runstore; print('starlette' in sys.modules, 'jinja2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
