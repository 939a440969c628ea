"""A pack's state diagram: the transition table and the pack's procedures, as Mermaid and as a PNG.

The graph comes from :func:`sim.machine.transitions.state_graph` (the table's rows that the pack
enables, each procedure's stages and outcomes); :mod:`sim.viz.diagram` lays it out and draws it.
``milestone-sim policies --diagram PACK`` prints the Mermaid text; the report embeds the PNG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..machine.transitions import state_graph
from .diagram import Diagram, Edge, Node, draw, mermaid

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..policy.model import Policy


def pack_diagram(policy: Policy) -> Diagram:
    """The diagram of a pack: milestone states, and a box of stages for each procedure."""
    nodes, edges = state_graph(policy)
    return Diagram(
        title=f"States and procedures of the {policy.policy} pack",
        nodes=tuple(Node(nid, label, group, kind) for nid, label, group, kind in nodes),
        edges=tuple(
            Edge(src, dst, label, "dashed" if dashed else "solid") for src, dst, label, dashed in edges
        ),
    )


def pack_mermaid(policy: Policy) -> str:
    """Mermaid ``stateDiagram-v2`` text of a pack."""
    return mermaid(pack_diagram(policy))


def pack_figure(policy: Policy) -> Figure:
    """The drawn diagram of a pack (a matplotlib Figure)."""
    return draw(pack_diagram(policy))
