"""@retry that succeeds on attempt 1, @catch that swallows an error, a worker that dies."""

import os
import signal

from runstore import FlowSpec, catch, current, retry, step


class RetryCatchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky)

    @retry(times=2)
    @step
    def flaky(self):
        print(f"flaky attempt {current.retry_count}")
        if current.retry_count == 0:
            if os.environ.get("HARD_CRASH") == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if os.environ.get("HARD_CRASH"):
                os._exit(13)
            raise RuntimeError("first attempt fails")
        self.next(self.risky)

    @catch(var="error")
    @step
    def risky(self):
        self.partial = "set before the error"
        raise KeyError("always fails")
        self.next(self.end)

    @step
    def end(self):
        print("error was", self.error)


if __name__ == "__main__":
    RetryCatchFlow()
