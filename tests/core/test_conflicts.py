"""The conflict rules of bidirectional groups (actors/core/conflicts.py), without databases."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.conflicts import Offer, Outcome, Stored, Version, decide, decide_all

NODES = ("alpha", "beta", "gamma")


def offer(node: str, time_us: int, value: int | None, *, at: str, priority: int = 0, policy="last_writer_wins"):
    row = None if value is None else {"id": 1, "v": value}
    version = Version(time_us, priority, node, time_us.to_bytes(8, "big"))
    return Offer("t", {"id": 1}, row, version, local=node == at, policy=policy)


def test_a_newer_offer_wins_and_an_equal_one_is_a_replay():
    first = offer("alpha", 10, 1, at="beta")
    won = decide(None, first)
    assert won.outcome is Outcome.WIN and won.write == Stored(first.version, first.row)
    assert decide(won.write, first).outcome is Outcome.REPLAY
    newer = offer("gamma", 11, 2, at="beta")
    assert decide(won.write, newer).outcome is Outcome.WIN


def test_an_older_remote_offer_is_discarded_and_an_older_local_one_repairs_the_row():
    stored = Stored(Version(20, 0, "gamma", b"x"), {"id": 1, "v": 9})
    remote = decide(stored, offer("alpha", 10, 1, at="beta"))
    assert remote.outcome is Outcome.DISCARD and remote.write is None and remote.conflict
    local = decide(stored, offer("beta", 10, 1, at="beta"))
    assert local.outcome is Outcome.REPAIR and local.write == stored and local.conflict


def test_ties_in_time_go_to_the_higher_priority_then_the_node_name():
    stored = Stored(Version(10, 1, "alpha", b"x"), {"id": 1, "v": 1})
    assert decide(stored, offer("beta", 10, 2, at="gamma", priority=5)).outcome is Outcome.WIN
    assert decide(stored, offer("beta", 10, 2, at="gamma", priority=0)).outcome is Outcome.DISCARD
    same_priority = Stored(Version(10, 0, "alpha", b"x"), None)
    assert decide(same_priority, offer("beta", 10, 2, at="gamma")).outcome is Outcome.WIN


def test_source_priority_lets_the_higher_priority_node_win_even_when_older():
    stored = Stored(Version(10, 5, "alpha", b"x"), {"id": 1, "v": 1})
    later_low = offer("beta", 99, 2, at="gamma", priority=1, policy="source_priority")
    assert decide(stored, later_low).outcome is Outcome.DISCARD
    assert decide(stored, offer("beta", 99, 2, at="gamma", priority=1)).outcome is Outcome.WIN


def test_a_delete_is_a_version_like_any_other():
    deleted = decide(None, offer("alpha", 10, None, at="beta"))
    assert deleted.write == Stored(Version(10, 0, "alpha", (10).to_bytes(8, "big")), None)
    older_update = decide(deleted.write, offer("beta", 5, 3, at="beta"))
    assert older_update.outcome is Outcome.REPAIR and older_update.write.row is None  # the row is deleted again
    newer_update = decide(deleted.write, offer("gamma", 15, 3, at="beta"))
    assert newer_update.outcome is Outcome.WIN and newer_update.write.row == {"id": 1, "v": 3}


@settings(max_examples=300, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(NODES), st.integers(1, 50), st.one_of(st.none(), st.integers(0, 9))),
        min_size=1,
        max_size=6,
        unique_by=lambda c: (c[0], c[1]),
    ),
    seed=st.randoms(use_true_random=False),
    policy=st.sampled_from(["last_writer_wins", "source_priority", "manual"]),
)
def test_every_node_ends_with_the_same_row_whatever_order_the_offers_arrive_in(changes, seed, policy):
    """The property the design rests on: the outcome is the same whichever order each node sees the offers
    in, and wherever its users' own writes fall before their offers (a user's write sets the row at once;
    the node sees its own change offered later, once captured)."""
    winner = max(
        changes,
        key=lambda c: Version(c[1], NODES.index(c[0]), c[0], c[1].to_bytes(8, "big")).rank(policy),
    )
    expected = None if winner[2] is None else {"id": 1, "v": winner[2]}
    for node in NODES:
        stored: dict = {}
        row: object = None
        # Events at this node: its users' writes (each before its own offer) and every offer, shuffled.
        offers = list(range(len(changes)))
        seed.shuffle(offers)
        timeline: list[tuple[str, int]] = [("offer", i) for i in offers]
        for i in offers:  # each user write lands anywhere before its own offer
            if changes[i][0] == node:
                position = timeline.index(("offer", i))
                timeline.insert(seed.randint(0, position), ("write", i))
        for kind, i in timeline:
            source, time_us, value = changes[i]
            if kind == "write":
                row = None if value is None else {"id": 1, "v": value}
                continue
            made = offer(source, time_us, value, at=node, priority=NODES.index(source), policy=policy)
            (decision,), _ = decide_all(stored, [(("t", b"1"), made)])
            if decision.write is not None:
                row = decision.write.row
        assert row == expected, (node, changes)


def test_decide_all_reports_the_final_state_per_row_in_a_slice():
    stored: dict = {}
    offers = [
        (("t", b"1"), offer("alpha", 10, 1, at="beta")),
        (("t", b"1"), offer("gamma", 5, 2, at="beta")),
        (("t", b"1"), offer("gamma", 20, 3, at="beta")),
    ]
    decisions, changed = decide_all(stored, offers)
    assert [d.outcome for d in decisions] == [Outcome.WIN, Outcome.DISCARD, Outcome.WIN]
    assert changed[("t", b"1")].row == {"id": 1, "v": 3}
    assert list(itertools.chain(changed)) == [("t", b"1")]


def test_an_older_change_with_the_same_row_is_no_conflict():
    stored = Stored(Version(20, 0, "gamma", b"x"), {"id": 1, "v": 1})
    same = decide(stored, offer("alpha", 0, 1, at="beta"))
    assert same.outcome is Outcome.SAME and same.write is None and not same.conflict
    own = decide(stored, offer("beta", 0, 1, at="beta"))
    assert own.outcome is Outcome.SAME and own.write is None
