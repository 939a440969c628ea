"""State diagrams: a directed graph with labelled edges and grouped nodes, drawn and written as Mermaid.

A :class:`Diagram` holds nodes (states, procedure stages, a start node, terminal states), edges
(actions drawn solid, timers and automatic events dashed) and groups (a cluster box per procedure).
:func:`mermaid` writes it as ``stateDiagram-v2`` text; :func:`draw` returns a matplotlib Figure
built without pyplot, like the charts of :mod:`sim.viz.plots`.

The drawing is a simple layered (Sugiyama-style) layout, left to right:

1. Back edges are found by a depth-first search from the start node(s); ignoring them, every node
   is ranked by its longest path from a source. Edges between the same two nodes are merged into
   one arrow whose label joins theirs, one per line (the arrow is dashed only if all of them are).
2. Real nodes sit in even columns (one per rank); an edge crosses the odd column after its source
   and an invisible "dummy" item holds its place in every column it crosses. Its label is one of
   these dummies (near its middle, where the column is wide enough), so labels take room in the
   layout and never overlap anything.
3. Groups become cluster boxes: each lies in a horizontal lane (clusters whose ranks do not overlap
   share one), the top-level nodes in a lane of their own. Only nodes of a cluster and edges
   touching it are placed inside its box.
4. A few barycentre sweeps order the items of each column to reduce crossings; each item is then
   moved towards its neighbours' heights (isotonic regression keeps the order and the spacing), and
   runs of an edge's dummies are lined up where there is room, so long edges bend seldom.
5. Edges are drawn as paths: straight across each column through their own slot, turning between
   columns in a channel of their own, so they pass beside boxes and labels, never through them.

Every text is shown literally (``parse_math=False``). Sizes are in points; the figure is sized to
the graph, at most :data:`MAX_SIZE` inches: beyond that everything shrinks uniformly and the figure
gets more pixels per inch (up to 1.5 x), so a large diagram stays sharp when zoomed.
"""

from __future__ import annotations

import itertools
import json
import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, PathPatch
from matplotlib.path import Path

from .plots import ChartFigure, literal_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["KINDS", "MAX_SIZE", "STYLES", "Diagram", "Edge", "Node", "draw", "mermaid"]

KINDS = ("state", "start", "end", "stage")
STYLES = ("solid", "dashed")
_ID = re.compile(r"[A-Za-z0-9_]+")

#: the largest figure drawn, in inches (width, height); bigger graphs are scaled down to fit
MAX_SIZE = (22.0, 14.0)
DPI = 110


@dataclass(frozen=True)
class Node:
    """A node: ``id`` is unique and Mermaid-safe; ``group`` names its cluster box ("" = none)."""

    id: str
    label: str
    group: str = ""
    kind: str = "state"  # "state" | "start" | "end" | "stage"

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise ValueError(f"node id must match [A-Za-z0-9_]+, got {self.id!r}")
        if self.kind not in KINDS:
            raise ValueError(f"node {self.id}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


@dataclass(frozen=True)
class Edge:
    """An edge ``src -> dst``: ``style`` "solid" is an action, "dashed" a timer or automatic event."""

    src: str
    dst: str
    label: str
    style: str = "solid"  # "solid" | "dashed"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(
                f"edge {self.src} -> {self.dst}: style must be solid or dashed, got {self.style!r}"
            )


@dataclass(frozen=True)
class Diagram:
    """A titled graph; every edge joins two of its nodes."""

    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "edges", tuple(self.edges))
        seen: set[str] = set()
        for n in self.nodes:
            if n.id in seen:
                raise ValueError(f"node id {n.id!r} is used twice")
            seen.add(n.id)
        for e in self.edges:
            for end in (e.src, e.dst):
                if end not in seen:
                    raise ValueError(f"edge {e.src} -> {e.dst}: no node {end!r}")


# ------------------------------------------------------------------------------ Mermaid

#: words Mermaid's state grammar reads as keywords where an id stands
_RESERVED = {
    "state",
    "note",
    "direction",
    "hide",
    "scale",
    "class",
    "classdef",
    "style",
    "end",
    "click",
    "as",
}
_DIRECTION = re.compile(r"(direction)(\s+)(tb|bt|lr|rl)\b", re.IGNORECASE)


def _edge_text(label: str) -> str:
    """An edge label Mermaid reads as one description: no ':' or ';', no comment, one line."""
    text = label.replace(":", " - ").replace(";", ",").replace('"', "'")
    while "%%" in text:
        text = text.replace("%%", "%")
    text = _DIRECTION.sub(r"\1-\3", text)
    return " ".join(text.split())


def _state_text(label: str) -> str:
    """A state description for ``state "..." as id``: no double quote, one line."""
    return " ".join(label.replace('"', "'").split())


def _mermaid_ids(d: Diagram) -> tuple[dict[str, str], dict[str, str]]:
    """Mermaid ids of the nodes (keywords get a trailing ``_``) and of the groups (``group_<name>``)."""
    taken: set[str] = set()
    ids: dict[str, str] = {}

    def unique(base: str) -> str:
        name = base
        while name in taken or name.lower() in _RESERVED:
            name += "_"
        taken.add(name)
        return name

    for n in d.nodes:
        if n.id.lower() not in _RESERVED:
            ids[n.id] = n.id
            taken.add(n.id)
    for n in d.nodes:
        if n.id not in ids:
            ids[n.id] = unique(n.id)
    groups: dict[str, str] = {}
    for n in d.nodes:
        if n.group and n.group not in groups:
            groups[n.group] = unique("group_" + (re.sub(r"[^A-Za-z0-9_]+", "_", n.group).strip("_") or "x"))
    return ids, groups


def mermaid(d: Diagram) -> str:
    """The diagram as Mermaid ``stateDiagram-v2`` text (deterministic: nodes and edges in input order).

    A start node without incoming edges is written ``[*]``; each group is a composite state
    ``state "group name" as group_<name> { ... }`` holding its nodes and the edges between them;
    every other edge follows, one line each: ``a --> b : label``. In labels ':' becomes ' - ', ';'
    a comma and double quotes single ones, so that each edge stays one valid line.
    """
    ids, group_ids = _mermaid_ids(d)
    incoming = {e.dst for e in d.edges}
    starts = {n.id for n in d.nodes if n.kind == "start" and n.id not in incoming}
    by_id = {n.id: n for n in d.nodes}

    def ref(node_id: str) -> str:
        return "[*]" if node_id in starts else ids[node_id]

    def declare(n: Node) -> str | None:
        if n.id in starts:
            return None
        label = _state_text(n.label)
        return ids[n.id] if label in ("", ids[n.id]) else f'state "{label}" as {ids[n.id]}'

    def edge_line(e: Edge) -> str:
        text = _edge_text(e.label)
        return f"{ref(e.src)} --> {ref(e.dst)}" + (f" : {text}" if text else "")

    lines = []
    if d.title.strip():
        lines += ["---", f"title: {json.dumps(' '.join(d.title.split()))}", "---"]
    lines += ["stateDiagram-v2", "    direction LR"]
    lines += [f"    {s}" for n in d.nodes if not n.group and (s := declare(n))]
    inside: set[int] = set()
    for group, gid in group_ids.items():
        lines.append(f'    state "{_state_text(group)}" as {gid} {{')
        lines += [f"        {s}" for n in d.nodes if n.group == group and (s := declare(n))]
        for i, e in enumerate(d.edges):
            if by_id[e.src].group == group and by_id[e.dst].group == group:
                lines.append(f"        {edge_line(e)}")
                inside.add(i)
        lines.append("    }")
    lines += [f"    {edge_line(e)}" for i, e in enumerate(d.edges) if i not in inside]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ drawing: sizes and colours

NODE_FONT = 9.0
EDGE_FONT = 8.0
GROUP_FONT = 9.0
TITLE_FONT = 12.0
LEGEND_FONT = 8.0

NODE_PAD_X, NODE_PAD_Y = 8.0, 5.0  # text to box edge, points
LABEL_PAD = 2.5  # edge label text to its white box
COL_GAP = 20.0  # horizontal gap between columns (where the edges curve)
ROW_GAP = 8.0  # vertical gap between items of a column
DUMMY_H = 6.0  # the height an edge takes where it only passes a column
BAND_GAP = 18.0  # vertical gap between lanes
CLUSTER_PAD = 9.0  # cluster box around its items
MARGIN = 12.0
LOOP_H = 16.0  # height of a self-loop above its box
STEEP = 12.0  # an edge changing height by more than this between columns takes a channel of its own
CHANNEL = 3.5  # width added to a gap per such edge

KIND_STYLE = {  # face, edge, text
    "start": ("#4d4d4d", "#262626", "white"),
    "state": ("#deebf7", "#3a6f96", "#1a1a1a"),
    "stage": ("#fde7c9", "#d9822b", "#1a1a1a"),
    "end": ("#d9f0d3", "#2e8b3a", "#1a1a1a"),
}
KIND_NAMES = {"start": "start", "state": "state", "stage": "procedure stage", "end": "terminal state"}
EDGE_COLOR = {"solid": "#3b3b3b", "dashed": "#7b4ea3"}
EDGE_NAMES = {"solid": "action", "dashed": "timer / automatic"}
CLUSTER_FACE, CLUSTER_EDGE, CLUSTER_TEXT = "#f4f4f4", "#a9a9a9", "#555555"


class _Measure:
    """Text extents in points, measured with the Agg renderer the figures use.

    Measured finely (at 288 dpi) with a margin: glyphs are hinted to whole pixels, so the same text
    is a few percent wider at 110 dpi than its size in points says.
    """

    DPI = 288.0

    def __init__(self) -> None:
        self.fig = Figure(dpi=self.DPI)
        self.canvas = FigureCanvasAgg(self.fig)
        self.renderer = self.canvas.get_renderer()
        self.cache: dict[tuple[str, float, str], tuple[float, float]] = {}

    def __call__(self, text: str, size: float, weight: str = "normal") -> tuple[float, float]:
        key = (text, size, weight)
        if key not in self.cache:
            if not text:
                self.cache[key] = (0.0, 0.0)
            else:
                t = self.fig.text(0, 0, text, fontsize=size, fontweight=weight, parse_math=False)
                bb = t.get_window_extent(self.renderer)
                t.remove()
                points = 72.0 / self.DPI
                self.cache[key] = (bb.width * points * 1.07 + 1.0, bb.height * points * 1.04 + 0.5)
        return self.cache[key]


def _wrap(label: str, width: int = 18, most: int = 24) -> str:
    """A label as drawn: a line longer than ``width`` is broken after "actor:" or before "(...)",
    then any line longer than ``most`` at spaces. Line breaks of the label are kept, words never split.
    """
    out = []
    for line in label.split("\n"):
        if len(line) > width:
            head, colon, tail = line.partition(": ")
            if colon and tail:
                line = f"{head}:\n{tail}"
            else:
                head, paren, tail = line.partition(" (")
                if paren and head:
                    line = f"{head}\n({tail}"
        for part in line.split("\n"):
            out += textwrap.wrap(part, most, break_long_words=False, break_on_hyphens=False) or [""]
    return "\n".join(out)


# ------------------------------------------------------------------------------ drawing: the graph


@dataclass
class _Link:
    """One arrow: the edges between an ordered pair of nodes, merged."""

    src: str
    dst: str
    label: str
    style: str
    back: bool = False  # drawn against the flow (laid out from dst to src)
    chain: list[int] = field(default_factory=list)  # item indices, in layout direction
    label_item: int = -1


@dataclass
class _Item:
    """A node or an edge's place in a column."""

    col: int
    band: int
    w: float
    h: float
    node: Node | None = None
    w_box: float = 0.0  # a node's box (``w`` may be wider: its self-loop's label)
    link: int = -1
    y: float = 0.0
    box_dy: float = 0.0  # centre of the node's box below the item's centre (room for a self-loop)
    prev: list[int] = field(default_factory=list)
    next: list[int] = field(default_factory=list)


def _merge(edges: Iterable[Edge]) -> tuple[list[_Link], dict[str, _Link]]:
    """Edges merged per (src, dst): one link each, labels one per line; self-loops apart."""
    merged: dict[tuple[str, str], list[Edge]] = {}
    for e in edges:
        merged.setdefault((e.src, e.dst), []).append(e)
    links, loops = [], {}
    for (src, dst), group in merged.items():
        labels = list(dict.fromkeys(e.label for e in group if e.label))
        style = "solid" if any(e.style == "solid" for e in group) else "dashed"
        link = _Link(src, dst, "\n".join(_wrap(t) for t in labels), style)
        if src == dst:
            loops[src] = link
        else:
            links.append(link)
    return links, loops


def _ranks(nodes: Sequence[Node], links: list[_Link]) -> dict[str, int]:
    """Longest-path ranks from the sources, ignoring back edges (marked on the links) found by DFS."""
    order = [n.id for n in nodes]
    out: dict[str, list[int]] = {v: [] for v in order}
    has_in = {v: False for v in order}
    for i, link in enumerate(links):
        out[link.src].append(i)
        has_in[link.dst] = True
    starts = [n.id for n in nodes if n.kind == "start"] or [v for v in order if not has_in[v]]
    state: dict[str, int] = {}  # 1 on the DFS stack, 2 done
    for root in [*starts, *order]:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(out[root]))]
        while stack:
            v, it = stack[-1]
            for i in it:
                w = links[i].dst
                if state.get(w) == 1:
                    links[i].back = True
                elif w not in state:
                    state[w] = 1
                    stack.append((w, iter(out[w])))
                    break
            else:
                state[v] = 2
                stack.pop()
    # longest path on the forward edges, in topological order
    fwd = [(lk.src, lk.dst) for lk in links if not lk.back]
    indeg = {v: 0 for v in order}
    succ: dict[str, list[str]] = {v: [] for v in order}
    for a, b in fwd:
        indeg[b] += 1
        succ[a].append(b)
    rank = {v: 0 for v in order}
    ready = [v for v in order if indeg[v] == 0]
    topo = []
    while ready:
        v = ready.pop(0)
        topo.append(v)
        for w in succ[v]:
            rank[w] = max(rank[w], rank[v] + 1)
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    kinds = {n.id: n.kind for n in nodes}
    # a source other than a start node sits just before its first successor, not at the far left
    for v in reversed(topo):
        if kinds[v] != "start" and not any(b == v for _, b in fwd) and succ[v]:
            rank[v] = max(0, min(rank[w] for w in succ[v]) - 1)
    low = min(rank.values(), default=0)
    return {v: r - low for v, r in rank.items()}


class _Layout:
    """Columns of items with positions in points (x right, y down)."""

    def __init__(self, d: Diagram, measure: _Measure) -> None:
        self.d = d
        self.m = measure
        self.nodes = {n.id: n for n in d.nodes}
        self.links, self.loops = _merge(d.edges)
        self.rank = _ranks(d.nodes, self.links)
        self.items: list[_Item] = []
        self.node_item: dict[str, int] = {}
        self.text = {n.id: _wrap(n.label or ("start" if n.kind == "start" else n.id)) for n in d.nodes}
        self._lanes()
        self._build()
        self._order()
        self._y()
        self._x()

    # -- lanes: the top level (band 0) and one band per set of clusters whose ranks do not overlap

    def _lanes(self) -> None:
        spans: dict[str, list[int]] = {}
        for n in self.d.nodes:
            if n.group:
                r = self.rank[n.id]
                lo_hi = spans.setdefault(n.group, [r, r])
                lo_hi[0], lo_hi[1] = min(lo_hi[0], r), max(lo_hi[1], r)
        self.spans = {g: (2 * lo, 2 * hi) for g, (lo, hi) in spans.items()}
        lanes: list[list[str]] = []
        for g in sorted(spans, key=lambda g: (spans[g][0], list(spans).index(g))):
            lo = self.spans[g][0]
            for lane in lanes:
                if self.spans[lane[-1]][1] < lo:
                    lane.append(g)
                    break
            else:
                lanes.append([g])
        self.lane_of = {g: i + 1 for i, lane in enumerate(lanes) for g in lane}
        self.lanes = lanes
        self.n_bands = len(lanes) + 1
        # band order: fewest lanes crossed by the edges; the top level first on a tie
        bands = list(range(self.n_bands))
        pairs = [(self.band(lk.src), self.band(lk.dst)) for lk in self.links]
        perms = itertools.permutations(bands) if self.n_bands <= 6 else [tuple(bands)]
        best = min(
            perms,
            key=lambda p: (sum(abs(p.index(a) - p.index(b)) for a, b in pairs), p),
        )
        self.band_pos = {b: best.index(b) for b in bands}

    def band(self, node_id: str) -> int:
        g = self.nodes[node_id].group
        return self.lane_of[g] if g else 0

    def _occupant(self, band: int, col: int) -> str | None:
        """The cluster whose box covers ``col`` in lane ``band`` (None: the lane is free there)."""
        if band == 0:
            return None
        for g in self.lanes[band - 1]:
            lo, hi = self.spans[g]
            if lo <= col <= hi:
                return g
        return None

    # -- items: nodes, and an edge's place in every column it crosses

    def _build(self) -> None:
        m = self.m
        ends: dict[tuple[str, bool], int] = {}  # edges meeting each side of a node (True: its right)
        for link in self.links:
            a, b = (link.dst, link.src) if link.back else (link.src, link.dst)
            ends[(a, True)] = ends.get((a, True), 0) + 1
            ends[(b, False)] = ends.get((b, False), 0) + 1
        for n in self.d.nodes:
            tw, th = m(self.text[n.id], NODE_FONT)
            many = max(ends.get((n.id, True), 0), ends.get((n.id, False), 0))
            w = max(tw + 2 * NODE_PAD_X, 36.0)
            h = max(th + 2 * NODE_PAD_Y, 6.25 * (many - 1) + 4.0)  # room to spread the arrows
            item = _Item(col=2 * self.rank[n.id], band=self.band(n.id), w=w, h=h, node=n, w_box=w)
            loop = self.loops.get(n.id)
            if loop is not None:
                lw, lh = m(loop.label, EDGE_FONT)
                extra = LOOP_H + (lh + 2 * LABEL_PAD + 2 if loop.label else 0)
                item.h += extra
                item.box_dy = extra / 2
                item.w = max(item.w, lw + 2 * LABEL_PAD + 4)
            self.node_item[n.id] = len(self.items)
            self.items.append(item)
        label_cols = self._label_columns()
        for li, link in enumerate(self.links):
            a, b = (link.dst, link.src) if link.back else (link.src, link.dst)
            ca, cb = 2 * self.rank[a], 2 * self.rank[b]
            label_col = label_cols.get(li, -1)
            chain = [self.node_item[a]]
            for col in range(ca + 1, cb):
                if col == label_col:
                    tw, th = m(link.label, EDGE_FONT)
                    w, h = tw + 2 * LABEL_PAD + 2, th + 2 * LABEL_PAD + 1
                else:
                    w, h = 0.0, DUMMY_H
                item = _Item(col=col, band=self._dummy_band(a, b, col), w=w, h=h, link=li)
                if col == label_col:
                    link.label_item = len(self.items)
                chain.append(len(self.items))
                self.items.append(item)
            chain.append(self.node_item[b])
            link.chain = chain
            for p, q in itertools.pairwise(chain):
                self.items[p].next.append(q)
                self.items[q].prev.append(p)
        self.n_cols = max((it.col for it in self.items), default=0) + 1

    def _label_columns(self) -> dict[int, int]:
        """The column of each link's label: near its middle, where it widens its column least.

        Labels of edges between adjacent ranks have one place (the odd column between them); the
        others go, longest first, where the column is already wide enough if they can.
        """
        width = [0.0] * (2 * max(self.rank.values(), default=0) + 1)
        for it in self.items:
            width[it.col] = max(width[it.col], it.w)
        spans = {}
        for li, link in enumerate(self.links):
            if link.label:
                r = sorted((self.rank[link.src], self.rank[link.dst]))
                spans[li] = (2 * r[0], 2 * r[1], self.m(link.label, EDGE_FONT)[0] + 2 * LABEL_PAD + 2)
        out = {}
        for li in sorted(spans, key=lambda li: (spans[li][1] - spans[li][0] > 2, -spans[li][2], li)):
            ca, cb, w = spans[li]
            mid = (ca + cb) / 2
            col = min(range(ca + 1, cb), key=lambda c: (max(0.0, w - width[c]) > 1.0, abs(c - mid), c))
            out[li] = col
            width[col] = max(width[col], w)
        return out

    def _dummy_band(self, a: str, b: str, col: int) -> int:
        """The lane an edge from ``a`` to ``b`` takes in ``col``: near its ends, outside other clusters."""
        ends = {self.nodes[a].group, self.nodes[b].group} - {""}
        ba, bb = self.band(a), self.band(b)
        pa, pb = self.band_pos[ba], self.band_pos[bb]
        lo, hi = min(pa, pb), max(pa, pb)
        options = []
        for band in range(self.n_bands):
            occupant = self._occupant(band, col)
            if occupant is not None and occupant not in ends:
                continue
            p = self.band_pos[band]
            away = lo - p if p < lo else p - hi if p > hi else 0
            options.append((away, 0 if band == ba else 1 if band == bb else 2, p, band))
        return min(options)[-1]

    # -- order within columns: barycentre sweeps, keeping the best

    def _order(self) -> None:
        cols: list[list[int]] = [[] for _ in range(self.n_cols)]
        for i, it in enumerate(self.items):
            cols[it.col].append(i)
        for col in cols:
            col.sort(key=lambda i: self.band_pos[self.items[i].band])
        best, best_cross = [c[:] for c in cols], self._crossings(cols)
        for sweep in range(8):
            down = sweep % 2 == 0
            seq = range(1, self.n_cols) if down else range(self.n_cols - 2, -1, -1)
            for c in seq:
                pos = {i: k for k, i in enumerate(cols[c - 1 if down else c + 1])}
                here = {i: k for k, i in enumerate(cols[c])}

                def key(
                    i: int, pos: dict[int, int] = pos, here: dict[int, int] = here, down: bool = down
                ) -> tuple[int, float]:
                    it = self.items[i]
                    nb = [pos[j] for j in (it.prev if down else it.next)]
                    bary = sum(nb) / len(nb) if nb else here[i] * 1.0
                    return self.band_pos[it.band], bary

                cols[c].sort(key=key)
            cross = self._crossings(cols)
            if cross < best_cross:
                best, best_cross = [c[:] for c in cols], cross
        self.cols = best

    def _crossings(self, cols: list[list[int]]) -> int:
        total = 0
        for c in range(len(cols) - 1):
            pos = {i: k for k, i in enumerate(cols[c + 1])}
            segs = sorted((k, pos[j]) for k, i in enumerate(cols[c]) for j in self.items[i].next)
            for (a1, b1), (a2, b2) in itertools.combinations(segs, 2):
                if a1 != a2 and b1 != b2 and (a1 < a2) != (b1 < b2):
                    total += 1
        return total

    # -- x: column widths, widened so that a cluster box is wider than its title

    def _x(self) -> None:
        width = [0.0] * self.n_cols
        for it in self.items:
            width[it.col] = max(width[it.col], it.w)
        for c in range(self.n_cols):
            width[c] = max(width[c], 14.0 if c % 2 else 30.0)
        # a gap where many edges change height is wider: each of them gets its own vertical channel
        gaps = [COL_GAP] * self.n_cols
        for c, col in enumerate(self.cols[:-1]):
            steep = sum(
                1 for i in col for j in self.items[i].next if abs(self._port_y(i) - self._port_y(j)) > STEEP
            )
            gaps[c] = COL_GAP + min(CHANNEL * max(0, steep - 2), 40.0)
        self.group_title = {g: self.m(g, GROUP_FONT, "bold") for g in self.spans}
        for g in sorted(self.spans, key=lambda g: self.spans[g][1]):
            lo, hi = self.spans[g]
            inner = sum(width[lo : hi + 1]) + sum(gaps[lo:hi])
            need = self.group_title[g][0] + 14.0 - 2 * CLUSTER_PAD  # the title starts 7 pt in
            if inner < need:
                width[hi] += need - inner
        self.width = width
        self.gaps = gaps
        self.left = []
        x = MARGIN + CLUSTER_PAD
        for c in range(self.n_cols):
            self.left.append(x)
            x += width[c] + gaps[c]
        self.right_edge = x - gaps[-1] + CLUSTER_PAD + MARGIN

    def cx(self, col: int) -> float:
        return self.left[col] + self.width[col] / 2

    # -- y: bands stacked, items moved towards their neighbours within their band

    def _y(self) -> None:
        self.title_h = self.m(self.d.title, TITLE_FONT, "bold")[1] if self.d.title.strip() else 0.0
        header = self.m("Ag", GROUP_FONT, "bold")[1] + 4.0
        need = [0.0] * self.n_bands
        for col in self.cols:
            for band in range(self.n_bands):
                hs = [self.items[i].h for i in col if self.items[i].band == band]
                if hs:
                    need[band] = max(need[band], sum(hs) + ROW_GAP * (len(hs) - 1))
        y = MARGIN + (self.title_h + 10.0 if self.title_h else 0.0)
        self.inner: dict[int, tuple[float, float]] = {}
        for band in sorted(range(self.n_bands), key=lambda b: self.band_pos[b]):
            if band and not need[band]:
                continue
            if band:
                y += header + CLUSTER_PAD
            self.inner[band] = (y, y + need[band])
            y += need[band] + (CLUSTER_PAD if band else 0.0)
            y += BAND_GAP
        self.bottom_edge = y - BAND_GAP
        self.header = header
        # start: each column's stack centred in its band; then sweeps towards the neighbours
        for col in self.cols:
            for band, (lo, hi) in self.inner.items():
                mine = [i for i in col if self.items[i].band == band]
                total = sum(self.items[i].h for i in mine) + ROW_GAP * (len(mine) - 1)
                yy = lo + (hi - lo - total) / 2
                for i in mine:
                    self.items[i].y = yy + self.items[i].h / 2
                    yy += self.items[i].h + ROW_GAP
        for sweep in range(12):
            mode = ("prev", "next", "both")[sweep % 3] if sweep < 9 else "both"
            seq = range(self.n_cols) if mode != "next" else range(self.n_cols - 1, -1, -1)
            for c in seq:
                for band, (lo, hi) in self.inner.items():
                    mine = [i for i in self.cols[c] if self.items[i].band == band]
                    if mine:
                        self._place(mine, lo, hi, mode)
        self._straighten()

    def _straighten(self) -> None:
        """Fewer bends: move runs of an edge's dummies to one height where their columns leave room."""
        where: dict[int, tuple[list[int], int]] = {}
        for col in self.cols:
            for band in self.inner:
                mine = [i for i in col if self.items[i].band == band]
                for k, i in enumerate(mine):
                    where[i] = (mine, k)

        def fits(i: int, y: float) -> bool:
            it = self.items[i]
            mine, k = where[i]
            lo, hi = self.inner[it.band]
            if y - it.h / 2 < lo - 0.01 or y + it.h / 2 > hi + 0.01:
                return False
            if k > 0:
                a = self.items[mine[k - 1]]
                if y - it.h / 2 - ROW_GAP < a.y + a.h / 2 - 0.01:
                    return False
            if k + 1 < len(mine):
                b = self.items[mine[k + 1]]
                if y + it.h / 2 + ROW_GAP > b.y - b.h / 2 + 0.01:
                    return False
            return True

        def bends(ys: list[float]) -> int:
            return sum(1 for p, q in itertools.pairwise(ys) if abs(p - q) > 0.5)

        for _ in range(3):
            for link in self.links:
                chain = link.chain
                run = chain[1:-1]
                if not run:
                    continue
                ys = [self._port_y(i) for i in chain]
                best, best_move = bends(ys), None
                for y in sorted({round(v, 2) for v in ys}):
                    ok = [fits(i, y) for i in run]
                    start = 0
                    while start < len(run):  # each maximal stretch of dummies that can move to y
                        if not ok[start]:
                            start += 1
                            continue
                        end = start
                        while end < len(run) and ok[end]:
                            end += 1
                        trial = ys[:]
                        trial[1 + start : 1 + end] = [y] * (end - start)
                        if bends(trial) < best:
                            best, best_move = bends(trial), (start, end, y)
                        start = end
                if best_move is not None:
                    start, end, y = best_move
                    for i in run[start:end]:
                        self.items[i].y = y

    def _place(self, mine: list[int], lo: float, hi: float, mode: str) -> None:
        """Heights nearest the neighbours' mean, keeping order and spacing, inside [lo, hi]."""
        items = [self.items[i] for i in mine]
        offsets, acc = [], 0.0
        for it in items:
            offsets.append(acc + it.h / 2)
            acc += it.h + ROW_GAP
        total = acc - ROW_GAP
        targets = []
        for it, off in zip(items, offsets, strict=True):
            nb = it.prev if mode == "prev" else it.next if mode == "next" else it.prev + it.next
            want = [self._port_y(j) for j in nb]
            goal = sum(want) / len(want) - it.box_dy if want else it.y
            targets.append(goal - off)
        z = _isotonic(targets)
        zmax = max(lo, hi - total)
        for it, off, zi in zip(items, offsets, z, strict=True):
            it.y = min(max(zi, lo), zmax) + off

    def _port_y(self, i: int) -> float:
        it = self.items[i]
        return it.y + it.box_dy


def _isotonic(values: list[float]) -> list[float]:
    """The nondecreasing sequence nearest ``values`` (least squares; pool adjacent violators)."""
    blocks: list[list[float]] = []  # [sum, count]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
    out: list[float] = []
    for s, n in blocks:
        out += [s / n] * int(n)
    return out


# ------------------------------------------------------------------------------ drawing: artists


def _ports(lay: _Layout) -> dict[tuple[int, int], float]:
    """Where each edge meets a node box: spread along the box's side, ordered by the other end."""
    ports: dict[tuple[int, int], float] = {}
    for ni in lay.node_item.values():
        it = lay.items[ni]
        box_h = it.h - 2 * it.box_dy
        for side in (it.prev, it.next):
            others = sorted(side, key=lambda j: lay.items[j].y)
            k = len(others)
            step = min(7.0, box_h * 0.8 / (k - 1)) if k > 1 else 0.0
            for idx, j in enumerate(others):
                ports[(ni, j)] = it.y + it.box_dy + (idx - (k - 1) / 2) * step
    return ports


def _channels(lay: _Layout, ports: dict[tuple[int, int], float]) -> dict[tuple[int, int], float]:
    """Where each steep segment between two columns turns: its own x in the gap, ordered so that
    segments going the same way do not cross (down: the higher start turns further right)."""
    out: dict[tuple[int, int], float] = {}
    for c, col in enumerate(lay.cols[:-1]):
        x1 = lay.left[c] + lay.width[c]
        x2 = lay.left[c + 1]
        segs = []
        for i in col:
            for j in lay.items[i].next:
                y1, y2 = _end_y(lay, ports, i, j), _end_y(lay, ports, j, i)
                if abs(y2 - y1) > STEEP:
                    segs.append(((0, -y1, -y2) if y2 > y1 else (1, y1, y2), (i, j)))
        segs.sort()
        n = len(segs)
        for k, (_, seg) in enumerate(segs):
            out[seg] = x1 + (x2 - x1) * (0.5 if n == 1 else 0.22 + 0.56 * k / (n - 1))
    return out


def _end_y(lay: _Layout, ports: dict[tuple[int, int], float], i: int, other: int) -> float:
    """The height where the segment from item ``i`` towards ``other`` leaves ``i``."""
    return ports[(i, other)] if (i, other) in ports else lay.items[i].y


def _edge_path(
    lay: _Layout, link: _Link, ports: dict[tuple[int, int], float], channels: dict[tuple[int, int], float]
) -> Path:
    """The link's path in layout direction: straight across columns, curves between them."""
    items = lay.items
    chain = link.chain
    a, b = items[chain[0]], items[chain[-1]]
    verts: list[tuple[float, float]] = [(lay.cx(a.col) + a.w_box / 2, ports[(chain[0], chain[1])])]
    codes: list[int] = [Path.MOVETO]

    def line_to(x: float, y: float) -> None:
        if abs(verts[-1][0] - x) + abs(verts[-1][1] - y) > 0.3:
            verts.append((x, y))
            codes.append(Path.LINETO)

    def curve(x0: float, x: float, y: float, seg: tuple[int, int]) -> None:
        """From the end of column ``x0`` to the start of the next (``x``), at height ``y`` there."""
        y0 = verts[-1][1]
        line_to(x0, y0)
        if abs(y - y0) < 0.3:
            line_to(x, y)
            return
        xm = channels.get(seg, (x0 + x) / 2)
        r = min(xm - x0, x - xm, max(4.0, 0.5 * min(x - x0, abs(y - y0)) if seg not in channels else 5.0))
        line_to(xm - r, y0)
        verts.extend([(xm, y0), (xm, y), (xm + r, y)])
        codes.extend([Path.CURVE4] * 3)
        line_to(x, y)

    for prev, i in itertools.pairwise(chain[:-1]):
        it = items[i]
        curve(lay.left[items[prev].col] + lay.width[items[prev].col], lay.left[it.col], it.y, (prev, i))
        line_to(lay.left[it.col] + lay.width[it.col], it.y)
    last = chain[-2]
    y1 = ports[(chain[-1], last)]
    curve(lay.left[items[last].col] + lay.width[items[last].col], lay.left[b.col], y1, (last, chain[-1]))
    line_to(lay.cx(b.col) - b.w_box / 2, y1)
    if link.back:  # drawn from its source: reverse the path (Bezier segments reverse exactly)
        verts = verts[::-1]
        codes = [Path.MOVETO, *codes[:0:-1]]
    return Path(verts, codes)


def draw(d: Diagram) -> Figure:
    """The diagram as a layered drawing, left to right (see the module's docstring)."""
    m = _Measure()
    lay = _Layout(d, m)
    items = lay.items

    # legend (drawn under the graph) and the overall extent
    kinds = [k for k in ("start", "state", "stage", "end") if any(n.kind == k for n in d.nodes)]
    styles = [s for s in STYLES if any(lk.style == s for lk in [*lay.links, *lay.loops.values()])]
    entries = [("kind", k, KIND_NAMES[k]) for k in kinds] + [("style", s, EDGE_NAMES[s]) for s in styles]
    swatch, sep = 22.0, 16.0
    sizes = [m(text, LEGEND_FONT) for _, _, text in entries]
    content_w = max(lay.right_edge, m(d.title, TITLE_FONT, "bold")[0] + 2 * MARGIN, 160.0)
    rows: list[list[int]] = [[]]
    row_w = MARGIN
    for k, (w, _h) in enumerate(sizes):
        need = swatch + 4 + w + sep
        if rows[-1] and row_w + need > content_w - MARGIN:
            rows.append([])
            row_w = MARGIN
        rows[-1].append(k)
        row_w += need
    legend_row_h = max([h for _, h in sizes] + [10.0]) + 6
    legend_top = lay.bottom_edge + 14.0
    total_h = legend_top + (legend_row_h * len(rows) if entries else 0.0) + MARGIN

    w_in, h_in = content_w / 72.0, total_h / 72.0
    scale = min(1.0, MAX_SIZE[0] / w_in, MAX_SIZE[1] / h_in)
    # a graph shrunk to fit is saved with more pixels per inch (up to 1.5 x), so its text stays sharp
    fig = ChartFigure(figsize=(w_in * scale, h_in * scale), dpi=min(DPI / scale, 1.5 * DPI))
    FigureCanvasAgg(fig)  # fig.canvas.draw() works at once (no pyplot, no global backend)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ax.set_xlim(0.0, content_w)
    ax.set_ylim(total_h, 0.0)
    ax.set_aspect("equal", adjustable="datalim")

    def fs(size: float) -> float:
        return size * scale

    if lay.title_h:
        ax.text(
            MARGIN,
            MARGIN,
            d.title,
            fontsize=fs(TITLE_FONT),
            fontweight="bold",
            ha="left",
            va="top",
            parse_math=False,
            gid="title",
        )

    # cluster boxes, behind everything
    for g, (lo, hi) in lay.spans.items():
        band = lay.lane_of[g]
        mine = [it for it in items if it.band == band and lo <= it.col <= hi]
        top = min(it.y - it.h / 2 for it in mine) - CLUSTER_PAD - lay.header
        bottom = max(it.y + it.h / 2 for it in mine) + CLUSTER_PAD
        x0 = lay.left[lo] - CLUSTER_PAD
        x1 = lay.left[hi] + lay.width[hi] + CLUSTER_PAD
        ax.add_patch(
            FancyBboxPatch(
                (x0, top),
                x1 - x0,
                bottom - top,
                boxstyle="round,pad=0,rounding_size=8",
                facecolor=CLUSTER_FACE,
                edgecolor=CLUSTER_EDGE,
                linewidth=fs(0.9),
                zorder=0.5,
                gid=f"cluster:{g}",
            )
        )
        ax.text(
            x0 + 7.0,
            top + 5.0,
            g,
            fontsize=fs(GROUP_FONT),
            fontweight="bold",
            color=CLUSTER_TEXT,
            ha="left",
            va="top",
            parse_math=False,
            zorder=0.6,
            gid=f"group:{g}",
        )

    # edges
    ports = _ports(lay)
    channels = _channels(lay, ports)
    for link in lay.links:
        color = EDGE_COLOR[link.style]
        dashed = link.style == "dashed"
        path = _edge_path(lay, link, ports, channels)
        ax.add_patch(
            PathPatch(
                path,
                facecolor="none",
                edgecolor=color,
                linewidth=fs(1.1),
                linestyle=(0, (4, 2.5)) if dashed else "solid",
                zorder=1,
                capstyle="butt",
                gid=f"path:{link.src}->{link.dst}",
            )
        )
        # the head: a solid arrow along the last few points of the path
        tail, tip = _head(path)
        ax.add_patch(
            FancyArrowPatch(
                tail,
                tip,
                arrowstyle="-|>",
                mutation_scale=fs(9.0),
                color=color,
                linewidth=fs(1.1),
                shrinkA=0,
                shrinkB=0,
                zorder=1.1,
            )
        )
        if link.label:
            it = items[link.label_item]
            _edge_label(ax, lay.cx(it.col), it.y, link, fs, gid=f"edge:{link.src}->{link.dst}")

    # nodes (and their self-loops)
    for n in d.nodes:
        it = items[lay.node_item[n.id]]
        face, edge, text_color = KIND_STYLE[n.kind]
        cx, cy = lay.cx(it.col), it.y + it.box_dy
        bw, bh = it.w_box, it.h - 2 * it.box_dy
        ax.add_patch(
            FancyBboxPatch(
                (cx - bw / 2, cy - bh / 2),
                bw,
                bh,
                boxstyle="round,pad=0,rounding_size=6",
                facecolor=face,
                edgecolor=edge,
                linewidth=fs(1.2),
                zorder=2,
                gid=f"box:{n.id}",
            )
        )
        ax.text(
            cx,
            cy,
            lay.text[n.id],
            fontsize=fs(NODE_FONT),
            color=text_color,
            ha="center",
            va="center",
            multialignment="center",
            parse_math=False,
            zorder=2.5,
            gid=f"node:{n.id}",
        )
        loop = lay.loops.get(n.id)
        if loop is not None:
            top = cy - bh / 2
            half = min(bw * 0.22, 14.0)
            color = EDGE_COLOR[loop.style]
            ax.add_patch(
                FancyArrowPatch(
                    (cx + half, top),
                    (cx - half, top),
                    connectionstyle="arc3,rad=1.1",
                    arrowstyle="-|>",
                    mutation_scale=fs(8.0),
                    color=color,
                    linewidth=fs(1.1),
                    shrinkA=0,
                    shrinkB=0,
                    linestyle="--" if loop.style == "dashed" else "-",
                    zorder=1.2,
                )
            )
            if loop.label:
                _edge_label(ax, cx, top - LOOP_H - 1.0, loop, fs, gid=f"edge:{n.id}->{n.id}", va="bottom")

    # legend
    y = legend_top
    for row in rows:
        x = MARGIN
        for k in row:
            what, key, text = entries[k]
            cy = y + legend_row_h / 2
            if what == "kind":
                face, edge, _ = KIND_STYLE[key]
                ax.add_patch(
                    FancyBboxPatch(
                        (x, cy - 5),
                        swatch,
                        10,
                        boxstyle="round,pad=0,rounding_size=3",
                        facecolor=face,
                        edgecolor=edge,
                        linewidth=fs(1.0),
                        gid=f"legend:{key}",
                    )
                )
            else:
                ax.add_line(
                    Line2D(
                        [x, x + swatch],
                        [cy, cy],
                        color=EDGE_COLOR[key],
                        linewidth=fs(1.1),
                        linestyle=(0, (4, 2.5)) if key == "dashed" else "solid",
                        gid=f"legend:{key}",
                    )
                )
            ax.text(
                x + swatch + 4,
                cy,
                text,
                fontsize=fs(LEGEND_FONT),
                ha="left",
                va="center",
                color="#333333",
                parse_math=False,
                gid=f"legend:{key}",
            )
            x += swatch + 4 + sizes[k][0] + sep
        y += legend_row_h
    return literal_text(fig)


def _head(path: Path) -> tuple[tuple[float, float], tuple[float, float]]:
    """The tip of a path and a point just behind it, along its last segment's direction."""
    verts = path.vertices
    tip = (float(verts[-1][0]), float(verts[-1][1]))
    for v in verts[-2::-1]:
        dx, dy = tip[0] - float(v[0]), tip[1] - float(v[1])
        dist = (dx * dx + dy * dy) ** 0.5
        if dist > 0.5:
            back = min(dist, 6.0) / dist
            return (tip[0] - dx * back, tip[1] - dy * back), tip
    return (tip[0] - 6.0, tip[1]), tip


def _edge_label(
    ax: Axes, x: float, y: float, link: _Link, fs: Callable[[float], float], gid: str, va: str = "center"
) -> None:
    """An edge's label on a white box, its border in the edge's colour and style."""
    color = EDGE_COLOR[link.style]
    ax.text(
        x,
        y,
        link.label,
        fontsize=fs(EDGE_FONT),
        ha="center",
        va=va,
        multialignment="center",
        color="#1f1f1f",
        parse_math=False,
        zorder=3,
        gid=gid,
        bbox={
            "boxstyle": f"round,pad={LABEL_PAD / EDGE_FONT:.3f}",
            "facecolor": "white",
            "edgecolor": color,
            "linewidth": fs(0.7),
            "linestyle": "--" if link.style == "dashed" else "-",
        },
    )
