"""The smallest runstore flow: three steps, one artifact.

Run it with ``python examples/hello_flow.py run`` and read it back with
``Flow('HelloFlow').latest_run['start'].task.data.greeting``.
"""

from runstore import FlowSpec, step


class HelloFlow(FlowSpec):
    """A flow that says hello."""

    @step
    def start(self):
        """Make a greeting."""
        self.greeting = "Hello, runstore!"
        self.next(self.hello)

    @step
    def hello(self):
        """Print it."""
        print(self.greeting)
        self.next(self.end)

    @step
    def end(self):
        """Finish."""
        print("HelloFlow is done.")


if __name__ == "__main__":
    HelloFlow()
