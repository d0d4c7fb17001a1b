"""A foreach N wide (tests/test_executor_dask.py); start and end pinned to this machine."""

from runstore import FlowSpec, Parameter, executor, step


class WideFlow(FlowSpec):
    n = Parameter("n", default=200, help="Children of the foreach.")

    @executor("local")
    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.sq = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)

    @executor("local")
    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    WideFlow()
