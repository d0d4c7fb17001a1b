"""A flow whose middle step fails (FAIL=1 in the environment) — for failure tests."""

import os

from runstore import FlowSpec, step


class FailingFlow(FlowSpec):
    @step
    def start(self):
        self.before = 1
        self.next(self.boom)

    @step
    def boom(self):
        print("about to fail")
        if os.environ.get("FAIL", "1") == "1":
            raise ValueError("boom goes the step")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FailingFlow()
