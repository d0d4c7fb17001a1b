"""For the crash tests (tests/test_reliability_crash.py): a foreach, a join, a large artifact.

``CRASH_FLOW_WAIT_IN=<step>`` makes the first task of that step announce itself on
stderr (``crash-flow-waiting <step> pid=<pid>``) and sleep, so a test can kill it
while user code runs. Every value is deterministic, so a resumed run's artifacts
can be compared with a clean run's.
"""

import os
import time

from runstore import FlowSpec, Parameter, current, step


def _maybe_wait():
    if os.environ.get("CRASH_FLOW_WAIT_IN") == current.step_name:
        os.write(2, f"crash-flow-waiting {current.step_name} pid={os.getpid()}\n".encode())
        time.sleep(120)


class CrashFlow(FlowSpec):
    size_mib = Parameter("size_mib", default=20, help="Size of the large artifact in MiB.")

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.config = {"name": "crash", "items": self.items}
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 2:
            _maybe_wait()
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = sorted(i.square for i in inputs)
        self.next(self.big)

    @step
    def big(self):
        import numpy as np

        _maybe_wait()
        # Random bytes do not compress: the array is written as real 16 MiB chunks.
        self.blob = np.random.default_rng(7).integers(0, 256, self.size_mib << 20, dtype=np.uint8)
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.squares) + int(self.blob[:1000].sum())


if __name__ == "__main__":
    CrashFlow()
