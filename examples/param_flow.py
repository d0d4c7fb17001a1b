"""Parameters with dashes: ``--model-version`` is ``self.model_version``.

``python examples/param_flow.py run --model-version v2 --learning-rate 0.01``
"""

from runstore import FlowSpec, JSONType, Parameter, step


class ParamFlow(FlowSpec):
    """Train (pretend) a model version with a learning rate."""

    model_version = Parameter("model-version", default="v1", help="Which model to train.")
    learning_rate = Parameter("learning-rate", default=0.1, help="Step size.")
    epochs = Parameter("epochs", default=3, help="Passes over the data.")
    config = Parameter("config", type=JSONType, default='{"layers": [64, 32]}', help="Model config (JSON).")

    @step
    def start(self):
        print(f"training {self.model_version} at lr={self.learning_rate} for {self.epochs} epochs")
        self.score = round(1.0 - self.learning_rate / self.epochs, 4)
        self.next(self.end)

    @step
    def end(self):
        print(f"{self.model_version}: score {self.score}, layers {self.config['layers']}")


if __name__ == "__main__":
    ParamFlow()
