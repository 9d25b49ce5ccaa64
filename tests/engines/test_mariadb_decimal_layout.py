"""The lean binlog decoder's DECIMAL reader (actors/engines/mariadb/rows_decoder.py) against the binary layout
MariaDB documents: digits in big-endian groups (a head of the leftover integral digits, 9-digit words, then the
fraction's 9-digit words and a tail of its leftover digits), the sign in the top bit (set: positive), every bit
inverted when negative. Packed here from random digit strings, every precision and scale shape, read back
exactly: sign, digits and exponent. (tests/engines/test_rows_decoder.py checks it against a real server.)"""

from __future__ import annotations

import decimal
import random

import pytest

from actors.engines.mariadb.rows_decoder import _decimal

BYTES_FOR_DIGITS = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def pack(negative: bool, integral: str, fraction: str) -> bytes:
    head = len(integral) % 9
    out = int(integral[:head]).to_bytes(BYTES_FOR_DIGITS[head], "big") if head else b""
    out += b"".join(int(integral[i : i + 9]).to_bytes(4, "big") for i in range(head, len(integral), 9))
    whole = len(fraction) - len(fraction) % 9
    out += b"".join(int(fraction[i : i + 9]).to_bytes(4, "big") for i in range(0, whole, 9))
    if len(fraction) % 9:
        out += int(fraction[whole:]).to_bytes(BYTES_FOR_DIGITS[len(fraction) % 9], "big")
    raw = bytearray(out)
    raw[0] ^= 0x80
    return bytes(b ^ 0xFF for b in raw) if negative else bytes(raw)


@pytest.mark.parametrize(
    ("precision", "scale"),
    [(1, 0), (1, 1), (9, 9), (10, 0), (14, 2), (18, 4), (20, 9), (27, 18), (30, 30), (38, 10), (65, 0), (65, 30)],
)
def test_decimal_reader_reads_the_packed_digits_exactly(precision: int, scale: int) -> None:
    rng = random.Random(precision * 100 + scale)
    read = _decimal(precision, scale)
    for case in range(1500):
        digits = "".join(rng.choice("0123456789") for _ in range(precision))
        if case % 20 == 0:
            digits = "0" * precision  # zero, and with the sign set: negative zero
        elif case % 7 == 0:
            digits = "0" * (precision // 2) + digits[precision // 2 :]  # leading zero groups
        negative = rng.random() < 0.5
        integral, fraction = digits[: precision - scale], digits[precision - scale :]
        text = ("-" if negative else "") + (integral or "0") + ("." + fraction if scale else "")
        packed = pack(negative, integral, fraction)
        value, end = read(b"ab" + packed + b"cd", 2)
        assert end == 2 + len(packed)
        assert value.as_tuple() == decimal.Decimal(text).as_tuple(), text
