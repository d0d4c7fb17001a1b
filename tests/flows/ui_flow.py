"""A small training-like flow for the UI tests: parameters, a foreach, a join, scalar results.

``FAIL_FOLD=1`` makes fold 1 of ``train`` fail.
"""

import os

import numpy as np

from runstore import FlowSpec, Parameter, step


class TrainFlow(FlowSpec):
    """Fit a tiny model on three folds and keep the mean accuracy."""

    alpha = Parameter("alpha", default=0.1, help="Learning rate.")
    epochs = Parameter("epochs", default=3, help="Passes over the data.")

    @step
    def start(self):
        self.folds = [0, 1, 2]
        self.note = "training with <b>alpha</b>"
        self.next(self.train, foreach="folds")

    @step
    def train(self):
        for epoch in range(self.epochs):
            print(f"fold {self.input} epoch {epoch} loss {1.0 / (epoch + 1 + self.alpha):.4f}")
        if os.environ.get("FAIL_FOLD") == str(self.input):
            raise RuntimeError(f"fold {self.input} diverged")
        self.weights = np.linspace(0.0, self.alpha, 12).reshape(3, 4)
        self.score = 0.7 + self.alpha / 2 + self.input / 100
        self.next(self.join)

    @step
    def join(self, inputs):
        self.scores = [inp.score for inp in inputs]
        self.next(self.end)

    @step
    def end(self):
        self.accuracy = round(sum(self.scores) / len(self.scores), 4)
        self.summary = {"folds": len(self.scores), "best": max(self.scores)}
        self.raw = b"\x00\x01binary"
        print(f"accuracy {self.accuracy}")


if __name__ == "__main__":
    TrainFlow()
