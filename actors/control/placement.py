"""Where actors run: capture and applier actors spread over the cluster's nodes, the audit actor beside
the supervisor (its checkpoint export directory is mounted where the supervisor runs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Placement:
    """Capture and applier actors that reserve nothing (the default) would all stay on one node: place them
    on the cluster's nodes in turn instead. Strictly (Ray's soft affinity still packed them on one node):
    when that node goes, calls to the actor fail and the supervisor creates it anew on a node alive then.

    Actors that reserve CPUs or memory (`supervisor.actor_cpus`, `actor_memory_bytes`) are left to Ray's
    SPREAD strategy instead: Ray then places them only where the resources are free (never on a head that
    offers no CPU), and the autoscaler adds workers for those that do not fit."""

    def __init__(self, cpus: float = 0.0, memory_bytes: int = 0) -> None:
        self._placed = 0
        #: Set inside one_look(): the alive nodes, asked for once.
        self._nodes: list[str] | None = None
        self._resources: dict[str, float] = {}
        if cpus:
            self._resources["num_cpus"] = cpus
        if memory_bytes:
            self._resources["memory"] = memory_bytes

    def resources(self) -> dict[str, float]:
        """The ``.options()`` reserving each capture or applier actor's resources (none by default)."""
        return dict(self._resources)

    def next_node(self) -> Any:
        """A scheduling strategy for the next capture or applier actor."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self._resources:
            return "SPREAD"
        nodes = self._nodes if self._nodes is not None else self._alive_nodes()
        if len(nodes) < 2:
            return "DEFAULT"
        self._placed += 1
        return NodeAffinitySchedulingStrategy(node_id=nodes[self._placed % len(nodes)], soft=False)

    @contextmanager
    def one_look(self) -> Iterator[None]:
        """Place the actors started inside on the nodes alive as it began: `ray.nodes()` is a GCS round trip
        returning every node's details (~0.5 ms on one node, more on a big cluster), once per start-up
        instead of once per actor. (An actor created anew later, after a node died, looks again.)"""
        self._nodes = None if self._resources else self._alive_nodes()
        try:
            yield
        finally:
            self._nodes = None

    @staticmethod
    def _alive_nodes() -> list[str]:
        import ray

        return sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])

    @staticmethod
    def this_node() -> Any:
        """A scheduling strategy for the supervisor's own node (soft: should it go, anywhere else)."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
