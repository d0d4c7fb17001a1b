from runstore import FlowSpec, Parameter, step


class SwitchNestedFlow(FlowSpec):
    """Nested static branches inside one case of a switch; the other case skips them."""
    way = Parameter("way", default="fan")

    @step
    def start(self):
        self.route = self.way
        self.next({"fan": self.fan, "plain": self.plain}, condition="route")

    @step
    def fan(self):
        self.next(self.p, self.q)

    @step
    def p(self):
        self.next(self.p1, self.p2)

    @step
    def p1(self):
        self.v = 1
        self.next(self.pj)

    @step
    def p2(self):
        self.v = 2
        self.next(self.pj)

    @step
    def pj(self, inputs):
        self.v = sum(i.v for i in inputs)
        self.next(self.j)

    @step
    def q(self):
        self.v = 10
        self.next(self.j)

    @step
    def j(self, inputs):
        self.total = sum(i.v for i in inputs)
        self.next(self.end)

    @step
    def plain(self):
        self.total = -1
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    SwitchNestedFlow()
