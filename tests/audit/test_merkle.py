"""Merkle tree heads and inclusion proofs against a direct transcription of RFC 9162 §2.1.1."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.audit import merkle
from actors.core.audit.entries import leaf_hash


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as the RFC defines it, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])).digest()


def leaves_of(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_leaf_and_node_prefixes_differ() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert merkle.root([]) == hashlib.sha256(b"").digest()


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_inclusion_proofs_verify_at_any_position_and_size(n: int, data: st.DataObject) -> None:
    leaves = leaves_of(n)
    root = reference_root(leaves)
    assert merkle.root(leaves) == root
    index = data.draw(st.integers(0, n - 1))
    proof = merkle.inclusion_proof(leaves, index)
    assert merkle.verify_inclusion(index, n, leaves[index], proof, root)
    # A wrong entry, a wrong index, a wrong size and a wrong root all fail.
    assert not merkle.verify_inclusion(index, n, leaf_hash(b"forged"), proof, root)
    if n > 1:
        assert not merkle.verify_inclusion((index + 1) % n, n, leaves[index], proof, root)
        assert not merkle.verify_inclusion(index, n, leaves[index], proof, reference_root(leaves[:-1]))


def test_every_position_of_every_small_tree() -> None:
    for n in range(1, 70):
        leaves = leaves_of(n)
        root = reference_root(leaves)
        for index in range(n):
            assert merkle.verify_inclusion(index, n, leaves[index], merkle.inclusion_proof(leaves, index), root)


def test_frontier_matches_reference_at_every_size() -> None:
    frontier = merkle.Frontier()
    leaves = leaves_of(200)
    for n, leaf in enumerate(leaves, 1):
        frontier.append(leaf)
        assert frontier.root() == reference_root(leaves[:n])
        assert len(frontier.hashes) == bin(n).count("1")
    restored = merkle.Frontier(frontier.size, frontier.hashes)
    assert restored.root() == frontier.root()
