"""#20 in a real Jupyter kernel: a notebook built with nbformat, executed by nbclient
(ipykernel), its outputs asserted. The kernel is another process; it reads the store file
the test filled, with this test's RUNSTORE_USER (tester) and RUNSTORE_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from storefill import fill_run

from runstore import Store

CELLS = [
    # 1: the client, on the shared file
    """from runstore import Flow, FlowSpec, Run, Runner, Store, get_namespace, namespace, step
store = Store({db!r})""",
    # 2: set the namespace in one cell ...
    "namespace(None)",
    # 3: ... it holds after an await (ipykernel runs such a cell as a coroutine in another context)
    """import asyncio
await asyncio.sleep(0.01)
print("AWAIT", repr(get_namespace()), Run("TrainFlow/2", store=store).data.x)""",
    # 4: ... and in plain thread-pool threads
    """from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(4) as pool:
    xs = list(pool.map(lambda i: Run(f"TrainFlow/{{i}}", store=store).data.x, [1, 2]))
    seen = set(pool.map(lambda _: repr(get_namespace()), range(8)))
print("THREADS", xs, sorted(seen))""",
    # 5: a flow defined in a cell, reading the latest successful TrainFlow run
    """class CellFlow(FlowSpec):
    @step
    def start(self):
        self.ns = get_namespace()
        self.x = Flow("TrainFlow").latest_successful_run.data.x
        self.next(self.end)

    @step
    def end(self):
        pass""",
    # 6: run it with Runner (file store: forked worker processes) from the notebook
    """run = Runner(CellFlow, store=store).run()
print("CELLRUN", json.dumps([run.data.ns, run.data.x, run.code.script_name,
                             "class CellFlow(FlowSpec)" in run.code.flowspec,
                             run["start"].task.metadata_dict["script-name"], get_namespace()]))""",
    # 7: rich display of a run list
    """Flow("TrainFlow", store=store).runs()""",
]


def test_notebook_namespace_cell_flow_and_rich_display(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    store = Store(db)
    fill_run(store, "TrainFlow", user="tester", artifacts={"end": {"x": 1}}, tags=["<b>sweep</b>"])
    fill_run(store, "TrainFlow", user="will", artifacts={"end": {"x": 2}})
    store.close()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import json")] + [
        nbformat.v4.new_code_cell(cell.format(db=str(db)) if "{db!r}" in cell or "{{i}}" in cell else cell)
        for cell in CELLS]
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / "executed.ipynb")  # kept for a failing run's inspection

    def text(i: int) -> str:
        return "".join(o.get("text", "") for o in nb.cells[i].outputs if o.output_type == "stream")

    assert text(3).strip() == "AWAIT None 2"
    assert text(4).strip() == "THREADS [1, 2] ['None']"
    # the run's steps read in tester's identity namespace (x=1 is tester's, x=2 will's), the
    # notebook keeps its namespace(None); the cell is the run's code
    assert json.loads(text(6).split("CELLRUN", 1)[1]) == ["user:tester", 1, "notebook_cell.py", True,
                                                         "notebook_cell.py", None]
    shown = [o for o in nb.cells[7].outputs if o.output_type == "execute_result"]
    html = shown[0]["data"]["text/html"]
    assert "TrainFlow/2" in html and "TrainFlow/1" in html and html.index("TrainFlow/2") < html.index("TrainFlow/1")
    assert "will" in html and "tester" in html and "succeeded" in html
    assert "&lt;b&gt;sweep&lt;/b&gt;" in html and "<b>sweep" not in html
    assert f"store {db.resolve()}" in html or f"store {db}" in html
    assert "TrainFlow runs" in html and "<runs of Flow('TrainFlow')" in shown[0]["data"]["text/plain"]


NB_RUNNER_CELLS = [
    "import json\nfrom runstore import NBRunner\nDB = {db!r}",
    # the flow in a cell of its own, with the imports it needs (as Metaflow asks of NBRunner)
    """from runstore import FlowSpec, Parameter, step

class NBFlow(FlowSpec):
    scale = Parameter("scale", default=2)

    @step
    def start(self):
        self.value = self.scale * 10
        self.next(self.end)

    @step
    def end(self):
        print("value", self.value)""",
    """run = NBRunner(NBFlow, store=DB).nbrun(scale=3)
print("NBRUN", json.dumps([run.data.value, run.code.script_name]))""",
    # top-level await in a cell: async_run runs the cell's source in a child process
    """running = await NBRunner(NBFlow, store=DB).async_run(scale=4)
await running.wait(timeout=100)
print("ASYNC", json.dumps([running.status, running.data.value, "value 40" in running.stdout]))""",
    "running",
]


def test_nbrunner_in_a_kernel(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(cell.format(db=str(db)) if "{db!r}" in cell else cell)
                for cell in NB_RUNNER_CELLS]
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / "executed.ipynb")

    def text(i: int) -> str:
        return "".join(o.get("text", "") for o in nb.cells[i].outputs if o.output_type == "stream")

    assert json.loads(text(2).split("NBRUN", 1)[1]) == [30, "notebook_cell.py"]
    assert json.loads(text(3).split("ASYNC", 1)[1]) == ["successful", 40, True]
    shown = [o for o in nb.cells[4].outputs if o.output_type == "execute_result"][0]["data"]
    assert "NBFlow/2" in shown["text/html"] and "ExecutingRun(" in shown["text/plain"]
