"""Static branches and a join that merges what the branches agree on."""

from runstore import FlowSpec, step


class BranchFlow(FlowSpec):
    """Two branches computed in parallel, joined."""

    @step
    def start(self):
        self.base = 10
        self.next(self.double, self.square)

    @step
    def double(self):
        self.value = self.base * 2
        self.next(self.join)

    @step
    def square(self):
        self.value = self.base ** 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = {inp.value for inp in inputs}
        self.total = inputs.double.value + inputs.square.value
        self.merge_artifacts(inputs, exclude=["value"])  # brings back self.base
        self.next(self.end)

    @step
    def end(self):
        print(f"base {self.base}: total {self.total}")


if __name__ == "__main__":
    BranchFlow()
