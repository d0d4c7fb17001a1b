"""Cards: reports a task builds, stored in the store, live while it runs (SPEC §15).

Metaflow's import paths and signatures, so flows port unchanged::

    from runstore import FlowSpec, step, card, current
    from runstore.cards import Markdown, Table, Image, Artifact, VegaChart, ProgressBar, get_cards

See ``docs/cards.md``. Nothing here imports pandas, Pillow or matplotlib; they are
used when you hand one of their objects to a component.

Example
-------
>>> from runstore.cards import Markdown, Table
>>> Table([[Markdown("**x**"), 1]], headers=["a", "b"]).render().count("<strong>x</strong>")
1
"""

from __future__ import annotations

from ._client import Card, CardContainer, get_cards
from ._runtime import CardComponentCollector, card
from .components import Artifact, CardComponent, Error, Image, Markdown, ProgressBar, Table, VegaChart

#: Metaflow's name for the component base class.
MetaflowCardComponent = CardComponent

__all__ = ["card", "get_cards", "Card", "CardContainer", "CardComponentCollector", "CardComponent",
           "MetaflowCardComponent", "Markdown", "Table", "Image", "Artifact", "VegaChart", "ProgressBar", "Error"]
