"""Production deployments (SPEC §7): read and compare-and-swap of a flow's ``deployments`` row.

Example
-------
>>> from runstore import Store
>>> store = Store(":memory:")
>>> new = Deployment("F", 0, "production:F-0-abc", "h", "anne", None, None, 0.0)
>>> with store.write() as conn:
...     swap_deployment(conn, new, None), swap_deployment(conn, new, None)
(True, False)
>>> with store.read() as conn:
...     find_deployment(conn, "F").namespace
'production:F-0-abc'
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ..util import now
from ._writes import flow_id

__all__ = ["Deployment", "find_deployment", "swap_deployment"]


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


def find_deployment(conn: sqlite3.Connection, flow: str) -> Deployment | None:
    """The current production deployment of ``flow``, or None."""
    row = conn.execute(
        "SELECT f.name, d.generation, d.namespace, d.token_hash, d.owner, d.code_id, d.script_name,"
        " d.deployed_at FROM deployments d JOIN flows f ON f.flow_id = d.flow_id WHERE f.name = ?",
        (flow,),
    ).fetchone()
    return Deployment(*row) if row else None


def swap_deployment(conn: sqlite3.Connection, new: Deployment, expected_token_hash: str | None) -> bool:
    """Install ``new`` if the deployment still has ``expected_token_hash`` (None: no deployment).

    False when another deploy got there first. Run inside the caller's write
    transaction, so the check and the write are one step.
    """
    fid = flow_id(conn, new.flow)
    current = conn.execute("SELECT token_hash FROM deployments WHERE flow_id = ?", (fid,)).fetchone()
    if (current[0] if current else None) != expected_token_hash:
        return False
    conn.execute(
        "INSERT OR REPLACE INTO deployments(flow_id, generation, namespace, token_hash, owner,"
        " code_id, script_name, deployed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (fid, new.generation, new.namespace, new.token_hash, new.owner, new.code_id, new.script_name, now()),
    )
    return True
