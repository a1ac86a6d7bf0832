"""A resolution as a graph: which project requires which, on one target interpreter.

Pure: built from typed values (canonical names, :class:`~packaging.version.Version`,
:class:`~packaging.requirements.Requirement`) and the target's marker environment. An edge u -> v
is there when a ``Requires-Dist`` of u names v and its marker is true on the target, for no extra
or for an extra of u that is requested somewhere on the way from the roots (extras propagate as a
resolver propagates them). Only what the roots require counts: a project nothing requires is not
part of the install.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from ..errors import InvalidWheel

__all__ = [
    "ActiveRequirement",
    "Edge",
    "Graph",
    "Package",
    "Resolution",
    "build_graph",
    "strongly_connected",
]


@dataclass(frozen=True, slots=True)
class Package:
    """One project of the resolution, with the requirements of its (patched) METADATA."""

    name: NormalizedName
    version: Version
    requirements: tuple[Requirement, ...] = field(compare=False)


@dataclass(frozen=True, slots=True)
class Resolution:
    """Every project of one resolution, what was asked for, and where it is evaluated."""

    packages: tuple[Package, ...]
    #: The projects asked for directly, with the extras asked for; ``None``: not known (a
    #: wheelhouse, a lock file), then :func:`build_graph` infers them.
    roots: Mapping[NormalizedName, frozenset[str]] | None
    #: The target interpreter's marker environment (pip's report carries it).
    environment: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ActiveRequirement:
    """A requirement that holds on the target, and the extras of its project it holds through
    (empty: it holds without any extra)."""

    requirement: Requirement = field(compare=False)
    text: str
    through_extras: tuple[str, ...] = ()

    def describe(self) -> str:
        if not self.through_extras:
            return self.text
        extras = ", ".join(repr(e) for e in self.through_extras)
        return f"{self.text} (through the extra {extras})"


@dataclass(frozen=True, slots=True)
class Edge:
    """Every requirement of ``source`` on ``target`` that holds on the target interpreter."""

    source: Package
    target: Package
    requirements: tuple[ActiveRequirement, ...]

    @property
    def key(self) -> tuple[NormalizedName, NormalizedName]:
        return (self.source.name, self.target.name)


@dataclass(frozen=True, slots=True)
class Graph:
    packages: Mapping[NormalizedName, Package]
    #: The roots used: asked for, or inferred (``roots_inferred``).
    roots: Mapping[NormalizedName, frozenset[str]]
    roots_inferred: bool
    #: What the roots require, directly or not (roots included).
    required: frozenset[NormalizedName]
    #: The extras each required project gets.
    extras: Mapping[NormalizedName, frozenset[str]]
    #: The edges between required projects, self-requirements left out, by (source, target).
    edges: Mapping[tuple[NormalizedName, NormalizedName], Edge]
    #: The marker environment the graph was evaluated in.
    environment: Mapping[str, str]
    #: Roots that name no project of the resolution (a ``--root`` typo).
    unknown_roots: tuple[NormalizedName, ...] = ()
    #: The walker that built it, whose evaluated markers :meth:`removing` reuses.
    walker: _Walker | None = field(default=None, compare=False, repr=False)

    def successors(self, name: NormalizedName) -> list[NormalizedName]:
        return sorted(v for (u, v) in self.edges if u == name)

    def removing(
        self, removed: Iterable[tuple[NormalizedName, NormalizedName]]
    ) -> frozenset[NormalizedName]:
        """What the roots still require once the requirements ``removed`` are gone."""
        walker = self.walker or _Walker(self.packages, self.environment)
        return walker.walk(self.roots, frozenset(removed))[0]


class _Walker:
    """Walks from the roots as a resolver does: a requirement counts when its project is
    required and its marker holds for no extra or for an extra that project gets."""

    def __init__(self, packages: Mapping[NormalizedName, Package], environment: Mapping[str, str]):
        self.packages = packages
        self.environment = dict(environment)
        self._cache: dict[tuple[NormalizedName, int, str], bool] = {}
        #: Per project: (index, target, extras asked of the target) of each requirement.
        self._targets = {
            name: [
                (i, canonicalize_name(r.name), frozenset(canonicalize_name(e) for e in r.extras))
                for i, r in enumerate(package.requirements)
            ]
            for name, package in packages.items()
        }

    def holds(self, package: Package, index: int, extra: str) -> bool:
        key = (package.name, index, extra)
        known = self._cache.get(key)
        if known is None:
            requirement = package.requirements[index]
            if requirement.marker is None:
                known = extra == ""
            else:
                try:
                    known = requirement.marker.evaluate({**self.environment, "extra": extra})
                except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as exc:
                    raise InvalidWheel(
                        f"{package.name} {package.version}: Requires-Dist "
                        f"{str(requirement)!r}: its marker cannot be evaluated ({exc})"
                    ) from None
            self._cache[key] = known
        return known

    def active(
        self, package: Package, extras: frozenset[str]
    ) -> list[tuple[int, NormalizedName, tuple[str, ...]]]:
        """(index, target, extras it holds through) of each requirement that holds."""
        found = []
        for index, target, _ in self._targets[package.name]:
            if self.holds(package, index, ""):
                through: tuple[str, ...] = ()
            else:
                through = tuple(e for e in sorted(extras) if self.holds(package, index, e))
                if not through:
                    continue
            found.append((index, target, through))
        return found

    def walk(
        self,
        roots: Mapping[NormalizedName, frozenset[str]],
        removed: frozenset[tuple[NormalizedName, NormalizedName]] = frozenset(),
    ) -> tuple[frozenset[NormalizedName], dict[NormalizedName, frozenset[str]]]:
        extras: dict[NormalizedName, frozenset[str]] = {}
        pending: list[NormalizedName] = []
        for name, wanted in roots.items():
            if name in self.packages:
                extras[name] = extras.get(name, frozenset()) | wanted
                pending.append(name)
        while pending:
            name = pending.pop()
            package = self.packages[name]
            asked = extras[name]
            for index, target, wanted in self._targets[name]:
                if target not in self.packages or (name, target) in removed:
                    continue
                key = (name, index, "")
                held = self._cache[key] if key in self._cache else self.holds(package, index, "")
                if not held and not any(self.holds(package, index, e) for e in asked):
                    continue
                before = extras.get(target)
                after = (before or frozenset()) | wanted
                if before != after:
                    extras[target] = after
                    pending.append(target)
        return frozenset(extras), extras


def strongly_connected(
    nodes: list[NormalizedName], successors: Mapping[NormalizedName, list[NormalizedName]]
) -> list[list[NormalizedName]]:
    """Tarjan's components, iteratively (no recursion limit on long chains)."""
    index: dict[NormalizedName, int] = {}
    low: dict[NormalizedName, int] = {}
    on_stack: set[NormalizedName] = set()
    stack: list[NormalizedName] = []
    components: list[list[NormalizedName]] = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(successors.get(start, [])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, neighbours = work[-1]
            for nxt in neighbours:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(successors.get(nxt, []))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def _infer_roots(
    walker: _Walker, packages: Mapping[NormalizedName, Package]
) -> dict[NormalizedName, frozenset[str]]:
    """Every project counts as installed; the roots are the members of each group of projects
    that nothing outside the group requires (a project nothing requires is a group alone)."""
    everything = dict.fromkeys(packages, frozenset[str]())
    _, extras = walker.walk(everything)
    successors: dict[NormalizedName, list[NormalizedName]] = {}
    for name, package in packages.items():
        targets = {t for _, t, _ in walker.active(package, extras[name]) if t in packages}
        successors[name] = sorted(targets - {name})
    components = strongly_connected(sorted(packages), successors)
    member_of = {name: i for i, component in enumerate(components) for name in component}
    required_from_outside = {
        member_of[v] for u, targets in successors.items() for v in targets
        if member_of[u] != member_of[v]
    }  # fmt: skip
    return {
        name: frozenset()
        for i, component in enumerate(components)
        if i not in required_from_outside
        for name in component
    }


def build_graph(resolution: Resolution) -> Graph:
    """The requirement graph of ``resolution`` on its target interpreter. Pure.

    Two packages of one project are refused (:class:`InvalidWheel`): a resolution holds one
    version of each project.
    """
    packages: dict[NormalizedName, Package] = {}
    for package in resolution.packages:
        other = packages.get(package.name)
        if other is not None and other.version != package.version:
            raise InvalidWheel(
                f"{package.name}: the resolution holds two versions, {other.version} and "
                f"{package.version}; give the wheels of one resolution"
            )
        packages.setdefault(package.name, package)
    walker = _Walker(packages, resolution.environment)
    inferred = resolution.roots is None
    roots = _infer_roots(walker, packages) if resolution.roots is None else dict(resolution.roots)
    unknown = tuple(sorted(name for name in roots if name not in packages))
    required, extras = walker.walk(roots)
    edges: dict[tuple[NormalizedName, NormalizedName], Edge] = {}
    grouped: dict[tuple[NormalizedName, NormalizedName], list[ActiveRequirement]] = {}
    for name in sorted(required):
        package = packages[name]
        for index, target, through in walker.active(package, extras[name]):
            if target == name or target not in packages:
                continue
            requirement = package.requirements[index]
            grouped.setdefault((name, target), []).append(
                ActiveRequirement(requirement, str(requirement), through)
            )
    for (source, target), found in sorted(grouped.items()):
        edges[(source, target)] = Edge(packages[source], packages[target], tuple(found))
    return Graph(
        packages=packages,
        roots=roots,
        roots_inferred=inferred,
        required=required,
        extras=extras,
        edges=edges,
        environment=dict(resolution.environment),
        unknown_roots=unknown,
        walker=walker,
    )
