"""A flow for resume and clone tests: `middle` fails while the file named by
RESUME_FAIL_FILE exists; `wait` blocks while RESUME_BLOCK_FILE exists."""

import os
import time

from runstore import FlowSpec, Parameter, current, read_info_file, step


class ResumeFlow(FlowSpec):
    alpha = Parameter("alpha", default=1, help="An integer.")
    learning_rate = Parameter("learning-rate", default=0.01)
    label = Parameter("label", default="base")

    @step
    def start(self):
        print(f"start origin={current.origin_run_id}")
        self.data = list(range(1000))
        self.next(self.middle)

    @step
    def middle(self):
        print(f"middle origin={current.origin_run_id}")
        block = os.environ.get("RESUME_BLOCK_FILE")
        while block and os.path.exists(block):
            time.sleep(0.05)
        flag = os.environ.get("RESUME_FAIL_FILE")
        if flag and os.path.exists(flag):
            raise RuntimeError("middle fails on purpose")
        self.total = sum(self.data) * self.alpha
        self.next(self.end)

    @step
    def end(self):
        self.origin = current.origin_run_id
        self.info = read_info_file()
        print(f"end origin={current.origin_run_id} production={current.is_production}")


if __name__ == "__main__":
    ResumeFlow()
