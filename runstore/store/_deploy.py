"""Store methods for production deployments (SPEC §7): read and compare-and-swap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..util import now

__all__ = ["Deployment", "DeployMixin"]


@dataclass(frozen=True)
class Deployment:
    """The production deployment of one flow.

    Example
    -------
    >>> Deployment("TrainFlow", 0, "production:TrainFlow-0-k3x9q2", "ab", "anne", None, "flow.py", 0.0).generation
    0
    """

    flow: str
    generation: int
    namespace: str
    token_hash: str
    owner: str
    code_id: int | None
    script_name: str | None
    deployed_at: float


class DeployMixin:
    """Reads and writes of the ``deployments`` table. Mixed into ``Store``."""

    write: Any
    read: Any
    _flow_id: Any

    def get_deployment(self, flow: str) -> Deployment | None:
        """The current production deployment of ``flow``, or None.

        Example
        -------
        >>> from runstore import Store
        >>> Store(":memory:").get_deployment("TrainFlow") is None
        True
        """
        with self.read() as conn:
            row = conn.execute(
                "SELECT f.name, d.generation, d.namespace, d.token_hash, d.owner, d.code_id, d.script_name,"
                " d.deployed_at FROM deployments d JOIN flows f ON f.flow_id = d.flow_id WHERE f.name = ?",
                (flow,),
            ).fetchone()
        return Deployment(*row) if row else None

    def swap_deployment(self, new: Deployment, expected_token_hash: str | None) -> bool:
        """Install ``new`` if the deployment still has ``expected_token_hash`` (None: no deployment).

        Returns False when another deploy got there first, so the caller can re-check
        authorization against the new state instead of overwriting it.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> d = Deployment("F", 0, "production:F-0-abc", "h", "anne", None, None, 0.0)
        >>> store.swap_deployment(d, None), store.swap_deployment(d, None)
        (True, False)
        """
        with self.write() as conn:
            flow_id = self._flow_id(conn, new.flow)
            current = conn.execute(
                "SELECT token_hash FROM deployments WHERE flow_id = ?", (flow_id,)
            ).fetchone()
            if (current[0] if current else None) != expected_token_hash:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO deployments(flow_id, generation, namespace, token_hash, owner,"
                " code_id, script_name, deployed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (flow_id, new.generation, new.namespace, new.token_hash, new.owner, new.code_id,
                 new.script_name, now()),
            )
        return True
