from runstore import FlowSpec, Parameter, step


class SwitchBranchFlow(FlowSpec):
    """A switch inside one branch of a static split; the join gets whichever case ran."""
    pick = Parameter("pick", default="x")

    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.choice = self.pick
        self.next({"x": self.a_x, "y": self.a_y}, condition="choice")

    @step
    def a_x(self):
        self.got = "a_x"
        self.next(self.join)

    @step
    def a_y(self):
        self.got = "a_y"
        self.next(self.join)

    @step
    def b(self):
        self.got = "b"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = sorted(i.got for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("seen", self.seen)


if __name__ == "__main__":
    SwitchBranchFlow()
