"""The chart starts the supervisor the way tests/actors/test_detached_supervisor.py proves it comes back: its
RayJob runs `worker-sync run --config FILE --detached`, and only the head offers the custom resource the
detached supervisor actor asks for, so Ray places it (and every restart) on the head."""

from __future__ import annotations

import json
import shlex

from actors.supervisor_actor import SUPERVISOR_RESOURCE
from tests.actors.test_detached_supervisor import ENTRYPOINT


def head_resources(rendering) -> dict[str, float]:
    """The head's `--resources`, as Ray reads it once KubeRay's shell has taken the outer quotes off."""
    raw = rendering.one("RayCluster")["spec"]["headGroupSpec"]["rayStartParams"]["resources"]
    return json.loads(shlex.split(raw)[0])


def test_the_rayjob_runs_the_entrypoint_the_self_healing_test_submits(rendering):
    entrypoint = shlex.split(rendering.one("RayJob")["spec"]["entrypoint"])
    assert entrypoint == [part.replace("{config}", "/etc/worker-sync/config.yaml") for part in ENTRYPOINT]


def test_only_the_head_offers_the_supervisor_resource(rendering):
    assert head_resources(rendering) == {SUPERVISOR_RESOURCE: 1}
    for group in rendering.one("RayCluster")["spec"]["workerGroupSpecs"]:
        assert "resources" not in group["rayStartParams"], group["groupName"]


def test_own_head_resources_keep_the_supervisor_resource(render):
    r = render({"head": {"rayStartParams": {"resources": '"{\\"worker-sync-supervisor\\": 1, \\"disk\\": 2}"'}}})
    assert head_resources(r) == {SUPERVISOR_RESOURCE: 1, "disk": 2}
