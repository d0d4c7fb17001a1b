"""Print every field of ``current`` in each step.

``python examples/current_flow.py run`` — then
``Task('CurrentFlow/<run>/start/<task>').stdout`` shows what was printed.
"""

from runstore import FlowSpec, Parameter, current, step


class CurrentFlow(FlowSpec):
    """Shows what a task knows about itself."""

    label = Parameter("label", default="demo", help="A parameter, to see parameter_names.")

    def show(self):
        for name, value in current.as_dict().items():
            print(f"{name} = {value!r}")

    @step
    def start(self):
        self.show()
        self.next(self.end)

    @step
    def end(self):
        self.show()


if __name__ == "__main__":
    CurrentFlow()
