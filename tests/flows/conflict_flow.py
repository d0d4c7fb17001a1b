"""merge_artifacts with branches that disagree -> MergeArtifactsError."""

from runstore import FlowSpec, step


class ConflictFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = 1
        self.same = "s"
        self.next(self.join)

    @step
    def b(self):
        self.x = 2
        self.same = "s"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ConflictFlow()
