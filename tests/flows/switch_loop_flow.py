from runstore import FlowSpec, Parameter, step


class SwitchLoopFlow(FlowSpec):
    """A recursive switch: check sends the run back to work until n reaches target."""
    target = Parameter("target", default=3, type=int)

    @step
    def start(self):
        self.n = 0
        self.history = []
        self.next(self.work)

    @step
    def work(self):
        self.n += 1
        self.history = self.history + [self.n]
        self.next(self.check)

    @step
    def check(self):
        self.state = "again" if self.n < self.target else "done"
        self.next({"again": self.work, "done": self.end}, condition="state")

    @step
    def end(self):
        print("n", self.n, "history", self.history)


if __name__ == "__main__":
    SwitchLoopFlow()
