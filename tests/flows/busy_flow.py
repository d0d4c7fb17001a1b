"""For the concurrency and worker tests (test_reliability_concurrency.py, test_runtime_cli.py):
a foreach fan-out and a join that also indexes ``inputs``."""

from runstore import FlowSpec, Parameter, step


class BusyFlow(FlowSpec):
    n = Parameter("n", default=4, help="Number of foreach tasks.")

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.value = {"index": self.input, "square": self.input**2, "pad": "x" * 2000}
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value["square"] for i in inputs)
        self.first, self.last = inputs[0].value["square"], inputs[-1].value["square"]  # indexing works
        self.next(self.end)

    @step
    def end(self):
        assert self.total == sum(i * i for i in range(self.n))


if __name__ == "__main__":
    BusyFlow()
