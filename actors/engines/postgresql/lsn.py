"""PostgreSQL log sequence numbers: ``"16/B374D848"`` <-> int."""

from __future__ import annotations


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
