"""Artifacts: ``self.model`` set in ``start`` is read back with
``Run('ModelFlow/<n>')['start'].task.data.model``.
"""

from runstore import FlowSpec, step


class Model:
    """A tiny model (a class from the flow file: stored with cloudpickle)."""

    def __init__(self, weights):
        self.weights = weights

    def predict(self, x):
        return sum(w * x for w in self.weights)


class ModelFlow(FlowSpec):
    """Fit a model, then evaluate it."""

    @step
    def start(self):
        self.model = Model([0.5, 0.25])
        self.params = {"weights": self.model.weights, "kind": "linear"}
        self.next(self.evaluate)

    @step
    def evaluate(self):
        self.prediction = self.model.predict(4)
        print("prediction", self.prediction)
        self.next(self.end)

    @step
    def end(self):
        print("done:", self.params)


if __name__ == "__main__":
    ModelFlow()
