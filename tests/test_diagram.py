"""State diagrams: exact Mermaid text, and drawings whose boxes, labels and arrows never collide."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, PathPatch
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from sim.viz.diagram import MAX_SIZE, Diagram, Edge, Node, draw, mermaid

# ------------------------------------------------------------------------------ examples


def tiny() -> Diagram:
    return Diagram(
        "Tiny",
        (Node("s", "", kind="start"), Node("a", "a"), Node("b", "done", kind="end")),
        (
            Edge("s", "a", "client: offer"),
            Edge("a", "b", "timeout 3d: auto", "dashed"),
            Edge("a", "a", "edit"),
        ),
    )


def milestone_diagram() -> Diagram:
    """A realistic graph: milestone states, a refund request, a dispute, an arbitration, dormancy."""
    refund, dispute = "procedure escrow_refund", "procedure dispute"
    arbitration, dormancy = "procedure arbitration", "procedure dormancy"
    nodes = (
        Node("start", "", kind="start"),
        Node("planned", "planned"),
        Node("funded", "funded"),
        Node("submitted", "submitted"),
        Node("changes_requested", "changes_requested"),
        Node("refund_requested", "refund_requested"),
        Node("disputed", "disputed"),
        Node("dormant", "dormant"),
        Node("released", "released", kind="end"),
        Node("refunded", "refunded", kind="end"),
        Node("resolved", "resolved", kind="end"),
        Node("deleted", "deleted", kind="end"),
        Node("rr_respond", "respond (freelancer, 7d)", refund, "stage"),
        Node("dp_client_response", "client_response (client, 4d)", dispute, "stage"),
        Node("dp_mediation", "mediation (platform, 10d)", dispute, "stage"),
        Node("dp_proposal", "proposal (both, 5d)", dispute, "stage"),
        Node("ar_offer", "offer (both, 4d)", arbitration, "stage"),
        Node("ar_arbitrate", "arbitrate (platform)", arbitration, "stage"),
        Node("dm_notify", "notify (client, 30d)", dormancy, "stage"),
        Node("dm_wait", "wait (freelancer, 14d)", dormancy, "stage"),
        Node("dm_close", "close (platform)", dormancy, "stage"),
        Node("offered", "offered"),
        Node("withdrawn", "withdrawn", kind="end"),
        Node("declined", "declined", kind="end"),
        Node("cancelled", "cancelled", kind="end"),
    )
    E = Edge
    edges = (
        E("start", "offered", "client: offer"),
        E("offered", "planned", "freelancer: accept_offer"),
        E("offered", "withdrawn", "client: withdraw_offer"),
        E("offered", "declined", "freelancer: decline_offer"),
        E("offered", "cancelled", "timeout 14d: offer_expired", "dashed"),
        E("planned", "funded", "client: fund"),
        E("planned", "deleted", "client: delete_milestone"),
        E("funded", "submitted", "freelancer: submit"),
        E("funded", "released", "client: approve"),
        E("funded", "refund_requested", "client: request_refund"),
        E("funded", "funded", "client: edit_milestone"),
        E("submitted", "released", "client: approve"),
        E("submitted", "released", "timeout 14d: auto_approve", "dashed"),
        E("submitted", "changes_requested", "client: request_changes"),
        E("changes_requested", "submitted", "freelancer: submit"),
        E("submitted", "refund_requested", "client: request_refund"),
        E("refund_requested", "rr_respond", "opens escrow_refund", "dashed"),
        E("rr_respond", "refunded", "freelancer: approve_refund"),
        E("rr_respond", "refunded", "timeout 7d: auto_refund", "dashed"),
        E("rr_respond", "disputed", "freelancer: dispute"),
        E("disputed", "dp_client_response", "opens dispute", "dashed"),
        E("dp_client_response", "dp_mediation", "client: respond"),
        E("dp_client_response", "released", "timeout 4d: release", "dashed"),
        E("dp_mediation", "dp_proposal", "platform: propose"),
        E("dp_mediation", "resolved", "client: accept_settlement"),
        E("dp_proposal", "resolved", "both: accept_settlement"),
        E("dp_proposal", "ar_offer", "either: open arbitration"),
        E("dp_proposal", "refunded", "timeout 5d: refund", "dashed"),
        E("ar_offer", "ar_arbitrate", "both: pay_fee"),
        E("ar_offer", "refunded", "timeout 4d: client wins", "dashed"),
        E("ar_arbitrate", "resolved", "platform: resolve_dispute"),
        E("ar_arbitrate", "released", "platform: for freelancer"),
        E("funded", "dormant", "timeout 90d: no activity", "dashed"),
        E("dormant", "dm_notify", "opens dormancy", "dashed"),
        E("dm_notify", "funded", "client: respond"),
        E("dm_notify", "dm_wait", "timeout 30d", "dashed"),
        E("dm_wait", "released", "freelancer: respond"),
        E("dm_wait", "dm_close", "timeout 14d", "dashed"),
        E("dm_close", "refunded", "platform: refund"),
    )
    return Diagram("Milestone states and procedures (upwork)", nodes, edges)


def random_diagram(seed: int, n: int = 40, m: int = 80) -> Diagram:
    """A messy graph: groups, cycles, self-loops, parallel and opposite edges, isolated nodes."""
    rng = random.Random(seed)
    groups = ["", "", "", "procedure a", "procedure b", "procedure c", "dormancy"]
    nodes = [Node("s0", "start", kind="start")]
    for i in range(1, n):
        group = rng.choice(groups)
        kind = "stage" if group else rng.choice(["state", "state", "end"])
        label = rng.choice(["x", "state_with_a_long_name", "stage (party, 10d)", "$a$ b"]) + str(i)
        nodes.append(Node(f"n{i}", label, group, kind))
    edges = []
    for _ in range(m):
        a, b = rng.randrange(n), rng.randrange(n)
        if rng.random() < 0.6 and a > b:
            a, b = b, a
        label = rng.choice(["", "client: fund", "timeout 14d: auto_approve", "x", "both: pay_fee"])
        edges.append(
            Edge(f"n{a}" if a else "s0", f"n{b}" if b else "s0", label, rng.choice(["solid", "dashed"]))
        )
    return Diagram(f"random {seed}", tuple(nodes), tuple(edges))


# ------------------------------------------------------------------------------ Mermaid


def test_mermaid_of_a_small_graph():
    assert mermaid(tiny()) == (
        "---\n"
        'title: "Tiny"\n'
        "---\n"
        "stateDiagram-v2\n"
        "    direction LR\n"
        "    a\n"
        '    state "done" as b\n'
        "    [*] --> a : client - offer\n"
        "    a --> b : timeout 3d - auto\n"
        "    a --> a : edit\n"
    )


def test_mermaid_without_title_or_labels():
    d = Diagram("", (Node("a", "a"), Node("b", "b")), (Edge("a", "b", ""),))
    assert mermaid(d) == "stateDiagram-v2\n    direction LR\n    a\n    b\n    a --> b\n"


def test_mermaid_groups_are_composite_states_and_every_edge_is_written_once():
    d = milestone_diagram()
    text = mermaid(d)
    assert text == mermaid(d)  # deterministic
    block = (
        '    state "procedure dispute" as group_procedure_dispute {\n'
        '        state "client_response (client, 4d)" as dp_client_response\n'
        '        state "mediation (platform, 10d)" as dp_mediation\n'
        '        state "proposal (both, 5d)" as dp_proposal\n'
        "        dp_client_response --> dp_mediation : client - respond\n"
        "        dp_mediation --> dp_proposal : platform - propose\n"
        "    }\n"
    )
    assert block in text
    for group in ("escrow_refund", "arbitration", "dormancy"):
        assert f'    state "procedure {group}" as group_procedure_{group} {{\n' in text
    lines = [line.strip() for line in text.splitlines() if " --> " in line]
    assert len(lines) == len(d.edges)
    for e in d.edges:
        src = "[*]" if e.src == "start" else e.src
        assert f"{src} --> {e.dst} : {e.label.replace(':', ' -').replace('  ', ' ')}" in lines
    assert text.count("{") == text.count("}") == 4


def test_mermaid_escapes_labels_so_each_edge_is_one_line():
    nodes = (
        Node("a", 'say "hi": now'),
        Node("state", "a keyword as id"),
        Node("c", "c", "group: with \"quotes\" and 'more'"),
    )
    labels = [
        'client: "approve"; then: pay',
        "50%% off\nsecond line",
        "timeout 3d: direction LR",
        "a --> b: c",
    ]
    d = Diagram(
        'T: "title"', nodes, tuple(Edge("a", "c" if i % 2 else "state", t) for i, t in enumerate(labels))
    )
    text = mermaid(d)
    assert text.startswith('---\ntitle: "T: \\"title\\""\n---\n')
    assert "    state \"say 'hi': now\" as a\n" in text
    assert '    state "a keyword as id" as state_\n' in text  # `state` is a keyword of the grammar
    assert "    state \"group: with 'quotes' and 'more'\" as group_group_with_quotes_and_more {\n" in text
    edge_lines = [line.strip() for line in text.splitlines() if " --> " in line]
    assert len(edge_lines) == len(labels)
    one_edge = re.compile(r"^(\[\*\]|\w+) --> (\[\*\]|\w+) : ([^:;\"\n]+)$")
    for line in edge_lines:
        match = one_edge.match(line)
        assert match, line
        assert "%%" not in match[3] and not re.search(r"direction\s+(lr|rl|tb|bt)", match[3], re.I)
    assert edge_lines[0] == "a --> state_ : client - 'approve', then - pay"
    assert edge_lines[1] == "a --> c : 50% off second line"
    assert edge_lines[3] == "a --> c : a --> b - c"


def test_mermaid_start_node_with_incoming_edges_stays_a_state():
    d = Diagram(
        "", (Node("s", "begin", kind="start"), Node("a", "a")), (Edge("s", "a", "go"), Edge("a", "s", "back"))
    )
    text = mermaid(d)
    assert '    state "begin" as s\n' in text and "[*]" not in text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Node("a-b", "x"), "must match"),
        (lambda: Node("a", "x", kind="box"), "kind"),
        (lambda: Edge("a", "b", "x", style="dotted"), "style"),
        (lambda: Diagram("", (Node("a", "x"), Node("a", "y")), ()), "twice"),
        (lambda: Diagram("", (Node("a", "x"),), (Edge("a", "zz", ""),)), "no node 'zz'"),
    ],
)
def test_bad_diagrams_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ------------------------------------------------------------------------------ drawing: geometry checks


def _texts(fig: Figure, prefix: str) -> dict[str, Text]:
    out = {}
    for t in fig.axes[0].texts:
        gid = t.get_gid() or ""
        if gid.startswith(prefix):
            assert gid not in out, f"two texts for {gid}"
            out[gid[len(prefix) :]] = t
    return out


def _patches(fig: Figure, prefix: str, kind: type) -> dict[str, object]:
    return {
        p.get_gid()[len(prefix) :]: p
        for p in fig.axes[0].patches
        if isinstance(p, kind) and (p.get_gid() or "").startswith(prefix)
    }


def _overlap(a: Bbox, b: Bbox, tol: float = 0.5) -> bool:
    return a.x0 < b.x1 - tol and b.x0 < a.x1 - tol and a.y0 < b.y1 - tol and b.y0 < a.y1 - tol


def check_layout(d: Diagram, fig: Figure) -> None:
    """Boxes, labels and texts never overlap, arrows never cross a box, clusters hold their nodes."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    width, height = fig.get_size_inches()
    assert width <= MAX_SIZE[0] + 1e-6 and height <= MAX_SIZE[1] + 1e-6
    boxes = {k: p.get_window_extent(renderer) for k, p in _patches(fig, "box:", FancyBboxPatch).items()}
    assert set(boxes) == {n.id for n in d.nodes}
    for (a, ba), (b, bb) in _pairs(boxes):
        assert not _overlap(ba, bb), f"node boxes {a} and {b} overlap"
    # every text: inside the figure, and apart from every other text and from every node box
    fig_box = fig.bbox
    texts = [(t.get_gid(), t.get_window_extent(renderer)) for t in ax.texts]
    for gid, bb in texts:
        assert fig_box.x0 - 0.5 <= bb.x0 and bb.x1 <= fig_box.x1 + 0.5, f"{gid} is clipped"
        assert fig_box.y0 - 0.5 <= bb.y0 and bb.y1 <= fig_box.y1 + 0.5, f"{gid} is clipped"
    labels = [
        ("edge:" + k, t.get_bbox_patch().get_window_extent(renderer)) for k, t in _texts(fig, "edge:").items()
    ]
    for (a, ba), (b, bb) in _pairs(texts + labels):
        if a != b and not {a, b} <= {x for x, _ in texts if x.startswith("legend:")}:
            assert not _overlap(ba, bb), f"{a} and {b} overlap"
    for gid, bb in texts + labels:
        for node, nb in boxes.items():
            if gid != f"node:{node}":
                assert not _overlap(bb, nb), f"{gid} overlaps the box of {node}"
    # arrows: no point of an edge's path inside a node box, nor under another edge's label
    to_display = ax.transData.transform
    for key, patch in _patches(fig, "path:", PathPatch).items():
        points = np.vstack([bez(np.linspace(0, 1, 12)) for bez, _ in patch.get_path().iter_bezier()])
        pts = to_display(points)
        for node, nb in boxes.items():
            assert not _inside(pts, nb).any(), f"edge {key} runs through the box of {node}"
        for gid, lb in labels:
            if gid != f"edge:{key}":
                assert not _inside(pts, lb).any(), f"edge {key} runs under the label {gid}"
    # clusters: around their nodes, clear of every other node and of each other
    clusters = {
        k: p.get_window_extent(renderer) for k, p in _patches(fig, "cluster:", FancyBboxPatch).items()
    }
    assert set(clusters) == {n.group for n in d.nodes if n.group}
    for n in d.nodes:
        for group, cb in clusters.items():
            nb = boxes[n.id]
            if n.group == group:
                inside = cb.x0 < nb.x0 and nb.x1 < cb.x1 and cb.y0 < nb.y0 and nb.y1 < cb.y1
                assert inside, f"{n.id} outside {group}"
            else:
                assert not _overlap(cb, nb), f"{n.id} inside the cluster {group}"
    for (a, ba), (b, bb) in _pairs(clusters):
        assert not _overlap(ba, bb), f"clusters {a} and {b} overlap"
    titles = _texts(fig, "group:")
    for group, cb in clusters.items():
        tb = titles[group].get_window_extent(renderer)
        assert cb.x0 <= tb.x0 and tb.x1 <= cb.x1 and cb.y0 <= tb.y0 and tb.y1 <= cb.y1, f"title of {group}"


def _inside(pts: np.ndarray, box: Bbox, margin: float = 1.0) -> np.ndarray:
    """Which points lie inside ``box`` by more than ``margin`` pixels."""
    x, y = pts[:, 0], pts[:, 1]
    return (x > box.x0 + margin) & (x < box.x1 - margin) & (y > box.y0 + margin) & (y < box.y1 - margin)


def _pairs(items: object) -> list:
    seq = list(items.items()) if isinstance(items, dict) else list(items)
    return [(seq[i], seq[j]) for i in range(len(seq)) for j in range(i + 1, len(seq))]


def _merged(d: Diagram) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in d.edges:
        out.setdefault(f"{e.src}->{e.dst}", [])
        if e.label and e.label not in out[f"{e.src}->{e.dst}"]:
            out[f"{e.src}->{e.dst}"].append(e.label)
    return {k: v for k, v in out.items() if v}


def _flat(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------ drawing


def test_draw_has_one_text_per_node_and_per_merged_edge_label():
    d = Diagram(
        "Merged $x$",
        (
            Node("s", "", kind="start"),
            Node("a", "funded"),
            Node("b", "released", kind="end"),
            Node("c", "$5 fee"),
        ),
        (
            Edge("s", "a", "client: fund"),
            Edge("a", "b", "client: approve"),
            Edge("a", "b", "timeout 14d: auto_approve", "dashed"),
            Edge("b", "a", "platform: reopen"),
            Edge("a", "c", ""),
            Edge("a", "a", "client: edit"),
        ),
    )
    fig = draw(d)
    assert isinstance(fig, Figure)
    nodes = _texts(fig, "node:")
    assert set(nodes) == {"s", "a", "b", "c"}
    assert nodes["a"].get_text() == "funded" and nodes["c"].get_text() == "$5 fee"
    assert nodes["s"].get_text() == "start"  # an unlabelled start node says so
    edges = _texts(fig, "edge:")
    assert set(edges) == {"s->a", "a->b", "b->a", "a->a"}  # a->c has no label
    assert edges["a->b"].get_text() == "client: approve\ntimeout 14d:\nauto_approve"  # long lines wrapped
    assert _flat(edges["a->b"].get_text()) == "client: approve timeout 14d: auto_approve"
    assert len(_patches(fig, "path:", PathPatch)) == 4  # one arrow per pair; the self-loop apart
    assert all(not t.get_parse_math() for t in fig.findobj(Text))
    check_layout(d, fig)


def test_draw_the_milestone_diagram(tmp_path: Path):
    d = milestone_diagram()
    fig = draw(d)
    nodes, edges = _texts(fig, "node:"), _texts(fig, "edge:")
    assert {k: _flat(t.get_text()) for k, t in nodes.items()} == {n.id: n.label or "start" for n in d.nodes}
    merged = _merged(d)
    assert {k: _flat(t.get_text()) for k, t in edges.items()} == {k: " ".join(v) for k, v in merged.items()}
    check_layout(d, fig)
    out = tmp_path / "milestone.png"
    fig.savefig(out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000


def test_draw_saves_to_png(tmp_path: Path):
    out = tmp_path / "tiny.png"
    fig = draw(tiny())
    fig.savefig(out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert fig._repr_png_()[:4] == b"\x89PNG"  # shows itself in Jupyter


@pytest.mark.parametrize("seed", range(6))
def test_draw_messy_graphs_legibly(seed: int):
    d = random_diagram(seed)
    fig = draw(d)
    assert len(_texts(fig, "node:")) == len(d.nodes)
    assert len(_texts(fig, "edge:")) == len(_merged(d))
    check_layout(d, fig)


def test_draw_small_and_empty_graphs():
    for d in (
        Diagram("", (), ()),
        Diagram("only a title that is rather long for so small a graph", (Node("a", "a"),), ()),
        Diagram("cycle", (Node("a", "a"), Node("b", "b")), (Edge("a", "b", "go"), Edge("b", "a", "back"))),
        Diagram(
            "one group",
            (Node("a", "a", "a very long group name indeed", "stage"),),
            (Edge("a", "a", "loop"),),
        ),
    ):
        fig = draw(d)
        check_layout(d, fig)


def test_back_edges_point_back():
    d = Diagram("", (Node("a", "a"), Node("b", "b")), (Edge("a", "b", "go"), Edge("b", "a", "back")))
    fig = draw(d)
    boxes = _patches(fig, "box:", FancyBboxPatch)
    paths = _patches(fig, "path:", PathPatch)
    ax_b, ax_a = boxes["b"].get_x(), boxes["a"].get_x()
    assert ax_a < ax_b  # a is left of b
    back = paths["b->a"].get_path().vertices
    assert back[0][0] == pytest.approx(ax_b) and back[-1][0] == pytest.approx(ax_a + boxes["a"].get_width())
    go = paths["a->b"].get_path().vertices
    assert go[0][0] == pytest.approx(ax_a + boxes["a"].get_width()) and go[-1][0] == pytest.approx(ax_b)
