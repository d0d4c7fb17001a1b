"""Nested foreach, static branches inside, merge_artifacts."""

from runstore import FlowSpec, step


class NestedFlow(FlowSpec):
    @step
    def start(self):
        self.outer = ["a", "b"]
        self.next(self.per_letter, foreach="outer")

    @step
    def per_letter(self):
        self.letter = self.input
        self.inner = [1, 2, 3]
        self.next(self.per_number, foreach="inner")

    @step
    def per_number(self):
        self.cell = f"{self.letter}{self.input}"
        self.stack = [(i, n) for i, n, _ in self.foreach_stack()]
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.cells = [i.cell for i in inputs]
        self.merge_artifacts(inputs, include=["letter"])
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.grid = [i.cells for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print(self.grid)


if __name__ == "__main__":
    NestedFlow()
