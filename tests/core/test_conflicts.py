"""The conflict rules of bidirectional groups (actors/core/conflicts.py), without databases."""

from __future__ import annotations

import itertools

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from actors.core.conflicts import WRITTEN, Offer, Outcome, Stored, Version, decide, decide_all, row_bytes

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


def history(data, changes, node):
    """One node's timeline: every change offered, each origin's in its commit order, interleaved at random;
    each of this node's own changes written by its user somewhere before its offer, in commit order."""
    by_origin = {n: sorted((c for c in changes if c[0] == n), key=lambda c: c[1]) for n in NODES}
    offers = []
    queues = {n: list(cs) for n, cs in by_origin.items() if cs}
    while queues:
        origin = data.draw(st.sampled_from(sorted(queues)))
        offers.append(queues[origin].pop(0))
        if not queues[origin]:
            del queues[origin]
    timeline = [("offer", c) for c in offers]
    earliest = 0
    for change in by_origin[node]:  # the user's writes, in order, each before its own offer
        position = timeline.index(("offer", change))
        at = data.draw(st.integers(earliest, position))
        timeline.insert(at, ("write", change))
        earliest = at + 1
    return timeline


def value_row(value):
    return None if value is None else {"id": 1, "v": value}


@settings(max_examples=500, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(NODES), st.integers(1, 40), st.one_of(st.none(), st.integers(0, 999))),
        min_size=1,
        max_size=7,
        unique_by=(lambda c: (c[0], c[1]), lambda c: c[2] if c[2] is not None else object()),
    ),
    data=st.data(),
    policy=st.sampled_from(["last_writer_wins", "source_priority", "manual"]),
    resolution_us=st.sampled_from([1, 10]),
)
def test_offers_converge_and_never_write_over_a_users_pending_change(changes, data, policy, resolution_us):
    """The properties the design rests on, over random interleavings of a node's users' writes, its own
    offers and other nodes' offers: every node ends with the highest-ranked change; Worker-Sync never writes
    over a row that holds a user's change not yet offered here (no lost update); and every row it writes is
    the highest-ranked change decided so far (a row never goes back to an older change)."""

    def version(c):
        return Version(c[1], NODES.index(c[0]), c[0], c[1].to_bytes(8, "big"))

    def rank(c):
        return version(c).rank(policy, resolution_us)

    winner = max(changes, key=rank)
    for node in NODES:
        stored: dict = {}
        row = None
        pending: set = set()  # this node's user writes not yet offered here
        left = row_bytes(None)  # what Worker-Sync last left in the row
        decided: list = []
        for kind, change in history(data, changes, node):
            source, _, value = change
            if kind == "write":
                # A write that changes nothing is not captured by MariaDB (nor a DELETE of no row by either
                # engine); PostgreSQL's no-op UPDATE is a README limit.
                assume(value_row(value) != row)
                row = value_row(value)
                pending.add(change)
                continue
            made = Offer(
                "t",
                {"id": 1},
                value_row(value),
                version(change),
                local=source == node,
                policy=policy,
                resolution_us=resolution_us,
            )
            before = stored.get(("t", b"1"))
            _, writes, stores = decide_all(stored, [(("t", b"1"), made)], {("t", b"1"): row_bytes(row)})
            pending.discard(change)
            decided.append(change)
            if writes:
                # A pending user change is never written over, unless it left the row exactly as Worker-Sync had
                # left it or as the change being decided did: nothing tells those apart from no change until
                # its own offer comes and settles the row (README, limits).
                identical = row_bytes(row) in (left, row_bytes(made.row) if made.local else left)
                assert not pending or identical, ("wrote over a user's pending change", node, changes)
                best = max(decided, key=rank)
                assert writes[("t", b"1")].row == value_row(best[2]), ("wrote an older change", node, changes)
                row = writes[("t", b"1")].row
            for key, state in stores.items():  # the writer reads written rows back: held is what is there
                stored[key] = Stored(state.version, state.row, row_bytes(row)) if state.held == WRITTEN else state
            left = stored[("t", b"1")].held if ("t", b"1") in stored else row_bytes(None)
            assert before is None or stored[("t", b"1")].version.rank(policy, resolution_us) >= before.version.rank(
                policy, resolution_us
            )
        assert row == value_row(winner[2]), (node, changes)


def test_a_users_newer_write_is_not_overwritten_by_its_own_older_offer():
    """The lost update the issue describes: the node's own change comes back while its user has already
    written the row again; nothing is written, and the newer offer later settles the version."""
    key = ("t", b"1")
    first, second = offer("alpha", 10, 1, at="alpha"), offer("alpha", 20, 2, at="alpha")
    stored: dict = {}
    now = {key: row_bytes({"id": 1, "v": 2})}  # the user wrote 1, then 2, before either was offered
    decisions, writes, _ = decide_all(stored, [(key, first)], dict(now))
    assert decisions[0].outcome is Outcome.WIN and not writes
    decisions, writes, _ = decide_all(stored, [(key, second)], dict(now))
    assert decisions[0].outcome is Outcome.WIN and not writes and stored[key].version == second.version


def test_a_remote_winner_waits_for_the_users_pending_change_then_repairs():
    """A remote change that ranks above a user's pending (not yet offered) change is stored, not written;
    when the user's change is offered and loses, the row is repaired to the remote winner."""
    key = ("t", b"1")
    clean = Stored(Version(5, 0, "beta", b"a"), {"id": 1, "v": 0}, row_bytes({"id": 1, "v": 0}))
    stored: dict = {key: clean}
    user_row = row_bytes({"id": 1, "v": 1})  # alpha's user wrote v=1 at time 10
    remote = offer("beta", 30, 3, at="alpha")
    (decision,), writes, _ = decide_all(stored, [(key, remote)], {key: user_row})
    assert decision.outcome is Outcome.WIN and not writes
    (decision,), writes, _ = decide_all(stored, [(key, offer("alpha", 10, 1, at="alpha"))], {key: user_row})
    assert decision.outcome is Outcome.REPAIR and writes[key].row == {"id": 1, "v": 3}


def test_commits_within_one_clock_tick_are_decided_by_priority():
    """MariaDB reports whole seconds: with a one-second tick a PostgreSQL commit at 0.3 s and a MariaDB commit
    stamped 0 s (made at 0.9 s) tie, and the higher priority wins whichever came first."""
    pg = Version(300_000, 1, "pg", b"a")
    maria = Version(0, 5, "maria", b"b")
    assert maria.rank("last_writer_wins", 1_000_000) > pg.rank("last_writer_wins", 1_000_000)
    assert maria.rank("last_writer_wins") < pg.rank("last_writer_wins")  # exact times otherwise
    later_second = Version(1_000_000, 0, "maria", b"c")
    assert later_second.rank("last_writer_wins", 1_000_000) > pg.rank("last_writer_wins", 1_000_000)


def test_decide_all_reports_the_final_state_per_row_in_a_slice():
    stored: dict = {}
    offers = [
        (("t", b"1"), offer("alpha", 10, 1, at="beta")),
        (("t", b"1"), offer("gamma", 5, 2, at="beta")),
        (("t", b"1"), offer("gamma", 20, 3, at="beta")),
    ]
    decisions, writes, stores = decide_all(stored, offers)
    assert [d.outcome for d in decisions] == [Outcome.WIN, Outcome.DISCARD, Outcome.WIN]
    assert writes[("t", b"1")].row == {"id": 1, "v": 3}
    assert list(itertools.chain(writes)) == [("t", b"1")] == list(stores)
    assert stores[("t", b"1")].held == WRITTEN  # read back by the writer before it is stored


def test_an_older_change_with_the_same_row_is_no_conflict():
    stored = Stored(Version(20, 0, "gamma", b"x"), {"id": 1, "v": 1})
    same = decide(stored, offer("alpha", 0, 1, at="beta"))
    assert same.outcome is Outcome.SAME and same.write is None and not same.conflict
    own = decide(stored, offer("beta", 0, 1, at="beta"))
    assert own.outcome is Outcome.SAME and own.write is None
