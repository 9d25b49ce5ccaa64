"""The conflict rules of bidirectional groups (actors/core/conflicts.py), without databases."""

from __future__ import annotations

import itertools

import msgspec
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from actors.core.conflicts import (
    UNKNOWN,
    WRITTEN,
    Offer,
    Outcome,
    Stored,
    Version,
    decide,
    decide_all,
    decode_stored,
    encode_stored,
    row_bytes,
    stamp,
)

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


def schedule(data, changes):
    """One random global order of everything that happens: each change is written by its node's user, then
    offered to its own node (which stamps it), then to every other node; a node's changes are written and
    offered in its commit order, at every node."""
    steps = []
    by_origin = {n: sorted((c for c in changes if c[0] == n), key=lambda c: c[1]) for n in NODES}
    # Per (origin, stage) a queue: stage 0 the user's write, 1 the offer at the origin, then one per other node.
    queues = {}
    for origin, own in by_origin.items():
        if own:
            queues[(origin, "write")] = list(own)
            queues[(origin, origin)] = []
            for node in NODES:
                if node != origin:
                    queues[(origin, node)] = []
    while any(queues.values()):
        ready = sorted(key for key, queue in queues.items() if queue)
        origin, stage = data.draw(st.sampled_from(ready))
        change = queues[(origin, stage)].pop(0)
        if stage == "write":
            steps.append(("write", origin, change))
            queues[(origin, origin)].append(change)
        else:
            steps.append(("offer", stage, change))
            if stage == origin:  # stamped at its own node: now it can reach the others
                for node in NODES:
                    if node != origin:
                        queues[(origin, node)].append(change)
    return steps


def value_row(value):
    return None if value is None else {"id": 1, "v": value}


KEY = ("t", b"1")


class Node:
    """One node of the simulation: its row, its version record, and its users' changes not yet offered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stored: dict = {}
        self.row = None
        self.holder = None  # the change whose value the row holds
        self.pending: list = []
        self.left = row_bytes(None)  # what Worker-Sync last left in the row
        self.decided: list = []


@settings(max_examples=600, deadline=None)
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
def test_offers_converge_keep_causal_order_and_never_write_over_a_pending_change(changes, data, policy, resolution_us):
    """The properties the design rests on, over random interleavings of users' writes, their nodes' own
    offers and other nodes' offers at three nodes: every node ends with the same row, the highest-ranked
    stamped change; a change made while its node's row held another change ranks above that one (never taken
    for older, whatever the policy); Worker-Sync never writes over a row holding a user's change not yet
    offered there (no lost update); and every row it writes is the highest-ranked change decided there so far
    (a row never goes back to an older change)."""
    nodes = {name: Node(name) for name in NODES}
    stamped: dict = {}  # change -> its version as its own node stamped it
    base_of: dict = {}  # change -> the change its node's row held when its user wrote it

    def rank_of(version):
        return version.rank(policy, resolution_us)

    for kind, at, change in schedule(data, changes):
        node = nodes[at]
        origin, time_us, value = change
        if kind == "write":
            # A write that changes nothing is not captured by MariaDB (nor a DELETE of no row by either
            # engine); PostgreSQL's no-op UPDATE is a README limit.
            assume(value_row(value) != node.row)
            base_of[change] = node.holder
            node.row, node.holder = value_row(value), change
            node.pending.append(change)
            continue
        local = origin == at
        version = Version(time_us, NODES.index(origin), origin, time_us.to_bytes(8, "big"))
        made = Offer(
            "t",
            {"id": 1},
            value_row(value),
            version if local else stamped[change],
            local=local,
            policy=policy,
            resolution_us=resolution_us,
        )
        (decision,), writes, stores = decide_all(node.stored, [(KEY, made)], {KEY: row_bytes(node.row)})
        if local:
            stamped[change] = decision.offer.version
            node.pending.remove(change)
        node.decided.append(decision.offer.version)
        if writes:
            # A pending user change is never written over, unless it left the row exactly as Worker-Sync had
            # left it or as the change being decided did: nothing tells those apart from no change until
            # its own offer comes and settles the row (README, limits).
            identical = row_bytes(node.row) in (node.left, row_bytes(made.row) if local else node.left)
            assert not node.pending or identical, ("wrote over a user's pending change", at, changes)
            written = writes[KEY]
            best = max(node.decided, key=rank_of)
            assert written.version == best, ("wrote an older change than one decided here", at, changes)
            node.row = written.row
            node.holder = next(c for c in changes if c[0] == written.version.node and c[1] == written.version.time_us)
        before = node.stored.get(KEY)
        for key, state in stores.items():  # the writer reads written rows back: held is what is there
            held = row_bytes(node.row) if state.held == WRITTEN else state.held
            node.stored[key] = Stored(state.version, state.row, held, state.held_version)
        if before is not None:
            assert rank_of(node.stored[KEY].version) >= rank_of(before.version), "a stored version went back"
        node.left = node.stored[KEY].held if KEY in node.stored else row_bytes(None)

    winner = max(stamped.values(), key=rank_of)
    expected = value_row(next(c[2] for c in changes if c[0] == winner.node and c[1] == winner.time_us))
    for node in nodes.values():
        assert node.row == expected, (node.name, changes)
    for change, base in base_of.items():  # causal order: a change ranks above what its user had seen
        if base is not None:
            assert rank_of(stamped[change]) > rank_of(stamped[base]), (change, "after", base, changes)


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
    assert decisions[0].outcome is Outcome.WIN and not writes and stored[key].version.same_change(second.version)


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


def test_records_round_trip_and_records_from_before_stamps_still_read():
    base = Version(5, 1, "beta", b"b", causal=7)
    record = Stored(Version(10, 0, "alpha", b"a", causal=11), {"id": 1, "v": 2}, row_bytes({"id": 1, "v": 2}), base)
    assert decode_stored(encode_stored(record)) == record
    old = msgspec.msgpack.encode([10, 0, "alpha", b"a", None])  # as written before rows and stamps were kept
    assert decode_stored(old) == Stored(Version(10, 0, "alpha", b"a"), None, UNKNOWN, None)


def test_a_stamp_ranks_a_change_above_its_base_under_every_policy():
    for policy in ("last_writer_wins", "source_priority", "manual"):
        for resolution_us in (1, 1_000_000):
            base = stamp(Version(2_300_000, 5, "pg", b"a"), None, policy, resolution_us)
            # Made later at a lower-priority node whose commit clock reads earlier (whole seconds).
            later = stamp(Version(2_000_000, 1, "maria", b"b"), base, policy, resolution_us)
            assert later.rank(policy, resolution_us) > base.rank(policy, resolution_us), (policy, resolution_us)
