"""Placement of capture and applier actors (actors/control/placement.py): what they reserve from Ray comes from
`supervisor.actor_cpus` / `actor_memory_bytes`; reserving actors are left to Ray's SPREAD strategy, so Ray
places them where the resources are free (never on a head that offers no CPU) and the autoscaler sees them."""

from __future__ import annotations

import pytest

from actors.control.placement import Placement
from config import parse_config
from config.errors import ConfigError


def test_by_default_nothing_is_reserved() -> None:
    assert Placement().resources() == {}


def test_reserving_actors_ask_for_their_resources_and_spread() -> None:
    placement = Placement(0.5, 512 * 1024**2)
    assert placement.resources() == {"num_cpus": 0.5, "memory": 512 * 1024**2}
    assert placement.next_node() == "SPREAD"  # no node pinning: a pinned head (0 CPUs) could never take them
    placement.resources()["num_cpus"] = 9
    assert placement.resources()["num_cpus"] == 0.5, "each caller gets its own copy"


def test_the_config_keys_default_to_zero_and_refuse_negatives() -> None:
    settings = parse_config(b"supervisor: {}\n", source="t").supervisor
    assert (settings.actor_cpus, settings.actor_memory_bytes) == (0.0, 0)
    text = b"supervisor: {actor_cpus: 0.25, actor_memory_bytes: 1073741824}\n"
    settings = parse_config(text, source="t").supervisor
    assert (settings.actor_cpus, settings.actor_memory_bytes) == (0.25, 1073741824)
    with pytest.raises(ConfigError, match="actor_cpus"):
        parse_config(b"supervisor: {actor_cpus: -1}\n", source="t")
