"""@timeout, @retry, @catch, @resources and @environment together (tests/test_decorators.py).

``slow`` sleeps 120 s past its 3 s timeout on attempt 0 (every attempt with
``--always``; ``--nap`` seconds, ``--chunked`` in short sleeps); ``--stubborn`` swallows the TimeoutException and sleeps on, so only the
scheduler's kill can end it. ``end`` records what ``slow`` caught and the environment.
"""

import os
import time

from runstore import FlowSpec, Parameter, TimeoutException, catch, current, environment, resources, retry, step, timeout


class TimeoutFlow(FlowSpec):
    always = Parameter("always", default=False, type=bool)
    stubborn = Parameter("stubborn", default=False, type=bool)
    nap = Parameter("nap", default=120.0)  # seconds slept past the timeout
    chunked = Parameter("chunked", default=False, type=bool)  # in 0.05 s pieces (Python code between)

    @resources(cpu=2, memory=1000, gpu=1)
    @environment(vars={"RUNSTORE_TEST_DECO": "from-environment"})
    @step
    def start(self):
        self.seen = os.environ.get("RUNSTORE_TEST_DECO")
        self.next(self.slow)

    @catch(var="err")
    @retry(times=1)
    @timeout(seconds=3)
    @step
    def slow(self):
        self.attempt = current.retry_count
        self.slow_pid = os.getpid()
        if current.retry_count == 0 or self.always:
            try:
                self._nap()
            except TimeoutException:
                if not self.stubborn:
                    raise
                self._nap()
        self.next(self.end)

    def _nap(self):
        if not self.chunked:
            time.sleep(self.nap)
            return
        until = time.monotonic() + self.nap
        while time.monotonic() < until:
            time.sleep(0.05)

    @step
    def end(self):
        self.leaked = os.environ.get("RUNSTORE_TEST_DECO")


if __name__ == "__main__":
    TimeoutFlow()
