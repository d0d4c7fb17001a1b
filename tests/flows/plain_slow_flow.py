"""No decorators: ``--with`` adds them (tests/test_decorators.py). ``work`` fails on its first
attempt with ``--fail-once``, sleeps 120 s with ``--sleep``."""

import time

from runstore import FlowSpec, Parameter, current, step


class PlainFlow(FlowSpec):
    fail_once = Parameter("fail-once", default=False, type=bool)
    sleep = Parameter("sleep", default=False, type=bool)

    @step
    def start(self):
        self.next(self.work)

    @step
    def work(self):
        self.attempt = current.retry_count
        if self.fail_once and current.retry_count == 0:
            raise ValueError("first attempt fails")
        if self.sleep:
            time.sleep(120)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PlainFlow()
