from runstore import FlowSpec, step


class SwitchNestedForeachFlow(FlowSpec):
    """A switch inside a nested foreach; the inner join gets whichever case ran."""

    @step
    def start(self):
        self.rows = ["r0", "r1"]
        self.next(self.row, foreach="rows")

    @step
    def row(self):
        self.row_name = self.input
        self.cols = [0, 1, 2]
        self.next(self.cell, foreach="cols")

    @step
    def cell(self):
        self.kind = "zero" if self.input == 0 else "other"
        self.next({"zero": self.zero, "other": self.other}, condition="kind")

    @step
    def zero(self):
        self.cellv = f"{self.row_name}:Z"
        self.next(self.row_join)

    @step
    def other(self):
        self.cellv = f"{self.row_name}:{self.input}"
        self.next(self.row_join)

    @step
    def row_join(self, inputs):
        self.line = [i.cellv for i in inputs]
        self.next(self.all_join)

    @step
    def all_join(self, inputs):
        self.grid = [i.line for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("grid", self.grid)


if __name__ == "__main__":
    SwitchNestedForeachFlow()
