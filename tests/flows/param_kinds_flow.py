"""One parameter of each kind (str, float, int, bool, JSON), for command-line round trips."""

from runstore import FlowSpec, JSONType, Parameter, step


class ParamKindsFlow(FlowSpec):
    label = Parameter("label", default="x")
    rate = Parameter("rate", default=0.5)
    n = Parameter("n", default=1)
    on = Parameter("on", default=False)
    config = Parameter("config", type=JSONType, default="{}")

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ParamKindsFlow()
