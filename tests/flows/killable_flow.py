"""A step whose first attempt waits to be killed (tests/test_executor_dask.py).

Attempt 0 of ``slow`` writes its process id to ``--pid-file`` and sleeps; a test kills
that process (a Dask worker), or the scheduler. ``@retry`` runs attempt 1, and a resumed
run finds the file already there: both finish at once.
"""

import os
import time

from runstore import FlowSpec, Parameter, current, retry, step


class KillableFlow(FlowSpec):
    pid_file = Parameter("pid-file", default="", help="Where attempt 0 writes its pid.")
    wait = Parameter("wait", default=60.0, help="Seconds attempt 0 sleeps.")

    @step
    def start(self):
        self.x = 41
        self.next(self.slow)

    @retry(times=1)
    @step
    def slow(self):
        if current.retry_count == 0 and not os.path.exists(self.pid_file):
            with open(self.pid_file + ".tmp", "w") as fh:
                fh.write(str(os.getpid()))
            os.rename(self.pid_file + ".tmp", self.pid_file)
            time.sleep(self.wait)
        self.y = self.x + 1
        self.next(self.end)

    @step
    def end(self):
        print("y =", self.y)


if __name__ == "__main__":
    KillableFlow()
