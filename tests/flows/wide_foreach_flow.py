"""A foreach of WIDTH children (default 20) and a join that indexes ``inputs``."""

from runstore import FlowSpec, Parameter, step


class WideForeachFlow(FlowSpec):
    width = Parameter("width", default=20)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.child, foreach="items")

    @step
    def child(self):
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.first = inputs[0].square
        self.last = inputs[-1].square
        self.count = len(inputs)
        self.squares = [i.square for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WideForeachFlow()
