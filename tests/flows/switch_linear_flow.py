import os

from runstore import FlowSpec, Parameter, step


class SwitchFlow(FlowSpec):
    """Switch in a linear flow; the level comes from a parameter."""
    level = Parameter("level", default="high")

    @step
    def start(self):
        self.mode = self.level
        self.next({"high": self.high, "low": self.low}, condition="mode")

    @step
    def high(self):
        self.result = "high"
        self.next(self.end)

    @step
    def low(self):
        if os.environ.get("SWITCH_FAIL") == "low":
            raise RuntimeError("low failed on purpose")
        self.result = "low"
        self.next(self.end)

    @step
    def end(self):
        print("result", self.result)


if __name__ == "__main__":
    SwitchFlow()
