"""A foreach flow for resume: child FAIL_INDEX (env) fails while FAIL_FILE exists."""

import os

from runstore import FlowSpec, step


class ResumeForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = ["a", "b", "c"]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        flag = os.environ.get("FAIL_FILE")
        if flag and os.path.exists(flag) and self.index == int(os.environ.get("FAIL_INDEX", "1")):
            raise ValueError(f"child {self.index} fails")
        self.out = f"{self.input}{self.index}"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.outs = [i.out for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ResumeForeachFlow()
