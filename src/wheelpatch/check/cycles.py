"""Every requirement cycle of a resolution, and the leg of each that is cheapest to lose.

Pure. Cycles are the elementary circuits of the requirement graph (Johnson's algorithm, run on
each strongly connected component), each starting at its alphabetically first project, listed
shortest first, then by name; at most ``limit`` are enumerated (a real resolution has a handful;
a pathological graph could have exponentially many).

The leg to remove is chosen cycle by cycle, in that order, on the graph left by the removals
chosen before (a cycle an earlier removal already breaks needs none). The cheapest leg u -> v is
the one after whose removal the roots still require every project they required: v stays
required through another path (the user asked for it, or another project requires it). Among
legs equally cheap (or, if none is free, those losing the fewest projects) the tie is broken by:
a leg into a project asked for directly; then a leg into the project with the most requirements
of its own (the host a plug-in such as triton points back to); then the alphabetical order of
(source, target).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from packaging.utils import NormalizedName

from .graph import Edge, Graph, strongly_connected

__all__ = ["DEFAULT_LIMIT", "Break", "Cycle", "CycleCheck", "find_cycles"]

#: How many cycles are enumerated at most.
DEFAULT_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Cycle:
    edges: tuple[Edge, ...]
    #: Index in :attr:`CycleCheck.breaks` of the removal that breaks it.
    broken_by: int

    @property
    def names(self) -> tuple[NormalizedName, ...]:
        return tuple(edge.source.name for edge in self.edges)

    def describe(self) -> str:
        """``torch 2.0.1 -> triton 2.0.0 -> torch``"""
        parts = [f"{e.source.name} {e.source.version}" for e in self.edges]
        return " -> ".join([*parts, self.edges[0].source.name])


@dataclass(frozen=True, slots=True)
class Break:
    """Removing every requirement of ``edge.source`` on ``edge.target``."""

    edge: Edge
    #: Projects the roots would no longer require (empty: nothing is lost).
    lost: tuple[NormalizedName, ...]
    #: Why this leg: a sentence.
    reason: str
    #: The cycles (indices) it breaks.
    cycles: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CycleCheck:
    graph: Graph
    cycles: tuple[Cycle, ...]
    breaks: tuple[Break, ...]
    #: ``limit`` cycles were found and the search stopped there.
    truncated: bool


def _circuits(
    start: NormalizedName,
    successors: Mapping[NormalizedName, list[NormalizedName]],
    found: list[tuple[NormalizedName, ...]],
    limit: int,
) -> bool:
    """Johnson's CIRCUIT from ``start`` (iterative); says whether ``limit`` was reached."""
    blocked = {start}
    blocking: dict[NormalizedName, set[NormalizedName]] = {}
    path = [start]
    # Each frame: node, its successors still to try, whether a circuit was found through it.
    frames: list[tuple[NormalizedName, list[NormalizedName], list[bool]]] = [
        (start, list(reversed(successors[start])), [False])
    ]
    while frames:
        node, todo, through = frames[-1]
        if todo:
            nxt = todo.pop()
            if nxt == start:
                found.append(tuple(path))
                through[0] = True
                if len(found) >= limit:
                    return True
            elif nxt not in blocked:
                blocked.add(nxt)
                path.append(nxt)
                frames.append((nxt, list(reversed(successors[nxt])), [False]))
            continue
        frames.pop()
        path.pop()
        if through[0]:
            pending = [node]
            while pending:
                item = pending.pop()
                if item in blocked:
                    blocked.discard(item)
                    pending.extend(blocking.pop(item, ()))
        else:
            for nxt in successors[node]:
                blocking.setdefault(nxt, set()).add(node)
        if frames and through[0]:
            frames[-1][2][0] = True
    return False


def _elementary_cycles(graph: Graph, limit: int) -> tuple[list[tuple[NormalizedName, ...]], bool]:
    names = sorted(graph.required)
    order = {name: i for i, name in enumerate(names)}
    found: list[tuple[NormalizedName, ...]] = []
    full = {name: graph.successors(name) for name in names}
    cyclic = {n for c in strongly_connected(names, full) if len(c) > 1 for n in c}
    for start in names:
        if start not in cyclic:
            continue
        # The component holding ``start`` in the graph of ``start`` and the names after it.
        rest = {
            name: [v for v in targets if order[v] >= order[start]]
            for name, targets in full.items()
            if order[name] >= order[start]
        }
        component = next(c for c in strongly_connected([start], rest) if start in c)
        if len(component) < 2:
            continue
        members = set(component)
        within = {name: [v for v in rest[name] if v in members] for name in component}
        if _circuits(start, within, found, limit):
            return found, True
    return found, False


def _requirement_count(graph: Graph, name: NormalizedName) -> int:
    return sum(1 for (u, _) in graph.edges if u == name)


def find_cycles(graph: Graph, *, limit: int = DEFAULT_LIMIT) -> CycleCheck:
    """Every cycle of ``graph`` (up to ``limit``) and the removals that break them all."""
    raw, truncated = _elementary_cycles(graph, limit)
    raw.sort(key=lambda names: (len(names), names))
    removed: list[tuple[NormalizedName, NormalizedName]] = []
    breaks: list[Break] = []
    broken_by: list[int] = []
    cycles_of_break: dict[int, list[int]] = {}
    for number, names in enumerate(raw):
        legs = [(names[i], names[(i + 1) % len(names)]) for i in range(len(names))]
        earlier = next((i for i, b in enumerate(breaks) if b.edge.key in legs), None)
        if earlier is not None:
            broken_by.append(earlier)
            cycles_of_break[earlier].append(number)
            continue
        before = graph.removing(removed)

        def cost(
            leg: tuple[NormalizedName, NormalizedName], before: frozenset[NormalizedName] = before
        ) -> tuple[int, int, int, tuple[NormalizedName, NormalizedName]]:
            asked = 0 if leg[1] in graph.roots else 1
            carries_extras = any(a.requirement.extras for a in graph.edges[leg].requirements)
            if asked == 0 and not carries_extras:
                lost = 0  # a root stays, with the same extras: nothing else can change
            else:
                lost = len(before - graph.removing([*removed, leg]))
            return (lost, asked, -_requirement_count(graph, leg[1]), leg)

        best = min(legs, key=cost)
        lost = tuple(sorted(before - graph.removing([*removed, best])))
        edge = graph.edges[best]
        removed.append(best)
        breaks.append(Break(edge, lost, _reason(graph, edge, lost, removed), ()))
        cycles_of_break[len(breaks) - 1] = [number]
        broken_by.append(len(breaks) - 1)
    cycles = tuple(
        Cycle(tuple(graph.edges[(n[i], n[(i + 1) % len(n)])] for i in range(len(n))), broken_by[k])
        for k, n in enumerate(raw)
    )
    final = tuple(
        Break(b.edge, b.lost, b.reason, tuple(cycles_of_break[i])) for i, b in enumerate(breaks)
    )
    return CycleCheck(graph, cycles, final, truncated)


def _reason(
    graph: Graph,
    edge: Edge,
    lost: tuple[NormalizedName, ...],
    removed: list[tuple[NormalizedName, NormalizedName]],
) -> str:
    target = edge.target.name
    if lost:
        return (
            f"no leg can go without a loss: removing it leaves {', '.join(lost)} required by "
            "nothing"
        )
    if target in graph.roots:
        how = "inferred as a root" if graph.roots_inferred else "asked for directly"
        return f"{target} stays required: {how}"
    still = graph.removing(removed)
    others = sorted(
        u for (u, v) in graph.edges if v == target and u in still and (u, v) not in removed
    )
    return f"{target} stays required by {', '.join(others)}"
