"""Foreach: one task per element (``self.input``, ``self.index``), then a join.

``python examples/foreach_flow.py run --n 100``
"""

from runstore import FlowSpec, Parameter, step


class ForeachFlow(FlowSpec):
    """Square n numbers in parallel tasks and add them up."""

    n = Parameter("n", default=10, help="How many tasks to fan out to.")

    @step
    def start(self):
        self.numbers = list(range(self.n))
        self.next(self.square, foreach="numbers")

    @step
    def square(self):
        self.result = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = [inp.result for inp in inputs]
        self.total = sum(self.results)
        self.next(self.end)

    @step
    def end(self):
        print(f"sum of squares below {self.n}: {self.total}")


if __name__ == "__main__":
    ForeachFlow()
