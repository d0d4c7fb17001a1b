from runstore import FlowSpec, step


class SwitchForeachFlow(FlowSpec):
    """A switch in every foreach child: even numbers one way, odd ones the other."""

    @step
    def start(self):
        self.items = [1, 2, 3, 4, 5]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.parity = "even" if self.input % 2 == 0 else "odd"
        self.next({"even": self.even, "odd": self.odd}, condition="parity")

    @step
    def even(self):
        self.out = ("even", self.input * 10)
        self.next(self.join)

    @step
    def odd(self):
        self.out = ("odd", self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.outs = [i.out for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("outs", self.outs)


if __name__ == "__main__":
    SwitchForeachFlow()
