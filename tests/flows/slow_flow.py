"""A step that waits (for the kill -9 test): it writes MARKER, then sleeps."""

import os
import time

from runstore import FlowSpec, step


class SlowFlow(FlowSpec):
    @step
    def start(self):
        self.x = list(range(1000))
        self.next(self.wait)

    @step
    def wait(self):
        with open(os.environ["MARKER"], "w") as fh:
            fh.write("started")
        time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SlowFlow()
