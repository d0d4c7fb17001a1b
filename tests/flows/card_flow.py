"""A flow with cards of every kind (tests/test_cards.py, docs/cards.md screenshots)."""

import os
import time

from runstore import FlowSpec, Parameter, card, current, step
from runstore.cards import Artifact, Image, Markdown, ProgressBar, Table, VegaChart


class Boom:
    """A component whose rendering fails (the task must not)."""

    def render(self) -> str:
        raise RuntimeError("this component fails on purpose")


class Slow:
    def render(self) -> str:
        time.sleep(30)
        return "<p>never</p>"


class CardFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5, help="learning rate")

    @card
    @step
    def start(self):
        self.scores = [0.61, 0.72, 0.80, 0.86]
        self.model_name = "tiny-forest"
        self.next(self.train)

    @card(type="blank", id="report")
    @card(type="blank", id="progress", refresh_interval=0.2)
    @step
    def train(self):
        bar = ProgressBar(max=4, label="folds", unit="folds")
        current.card["progress"].append(bar)
        gate = os.environ.get("CARD_GATE")
        for fold in range(1, 5):
            bar.update(fold)
            if gate:
                time.sleep(0.3)  # past refresh_interval: each refresh below is stored
            current.card["progress"].refresh()
            if gate and fold == 2:
                open(gate + ".reached", "w").close()
                deadline = time.time() + 60
                while not os.path.exists(gate) and time.time() < deadline:
                    time.sleep(0.05)
        current.card["report"].append(Markdown("# Model report\n\nTrained **tiny-forest** with `alpha`."))
        current.card["report"].append(Table([["accuracy", 0.86], ["folds", 4]], headers=["metric", "value"]))
        current.card["report"].append(VegaChart({
            "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "data": {"values": [{"fold": i + 1, "score": s} for i, s in enumerate([0.61, 0.72, 0.80, 0.86])]},
            "width": 420, "height": 220, "mark": {"type": "line", "point": True},
            "encoding": {"x": {"field": "fold", "type": "ordinal"}, "y": {"field": "score", "type": "quantitative"}},
        }))
        current.card["report"].append(Artifact({"alpha": self.alpha, "folds": 4}, name="settings"))
        if os.environ.get("CARD_BOOM"):
            current.card["report"].append(Boom())
        self.accuracy = 0.86
        self.next(self.end)

    @card(type="blank", timeout=1)
    @step
    def end(self):
        if os.environ.get("CARD_SLOW"):
            current.card.append(Slow())
        current.card.append(Markdown("done"))
        if os.environ.get("CARD_FAIL_END"):
            raise RuntimeError("end fails on purpose")


if __name__ == "__main__":
    CardFlow()
