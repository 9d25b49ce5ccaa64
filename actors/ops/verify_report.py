"""What `worker-sync verify` reports: per table, ranges and rows compared and every differing key with
both rows (canonical texts, actors.core.rowdigest), as one JSON document or as lines of text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from actors.ops.verify_repair import Repaired
from actors.ops.verify_scan import Suspect, TablePair
from actors.ops.verify_settle import Wait

Texts = dict[str, str | None]


class Difference(msgspec.Struct, kw_only=True):
    #: Source key column -> canonical text.
    key: Texts
    #: Source names of the columns that differ (empty when the row exists at one end only).
    columns: list[str]
    #: The whole row at each end, in that end's column names; None where the key is absent.
    source: Texts | None
    target: Texts | None


class TableReport(msgspec.Struct, kw_only=True):
    source: str
    target: str
    #: "database": rows hashed inside both databases; "client": read and hashed here (types SQL cannot form).
    hashed_in: Literal["database", "client"]
    ranges_checked: int
    source_rows: int
    target_rows: int
    #: Keys that differed on the first read and were read again; how many of them were only in flight.
    rechecked: int
    in_flight: int
    #: How each wait for the link to catch up ended (see actors.ops.verify_settle.Wait).
    waits: list[str]
    seconds: float
    differences: list[Difference]
    repaired: Repaired | None = None


class Report(msgspec.Struct, kw_only=True):
    link: str
    source: str
    target: str
    equal: bool
    tables: list[TableReport]


def summary(report: Report, *, finished_at: float) -> dict[str, object]:
    """What `verify --report` sends the supervisor (POST /verify/results): counts only, never rows."""
    return {
        "link": report.link,
        "mismatches": sum(len(t.differences) for t in report.tables),
        "finished_at": finished_at,
        "tables": len(report.tables),
        "source_rows": sum(t.source_rows for t in report.tables),
        "target_rows": sum(t.target_rows for t in report.tables),
        "seconds": round(sum(t.seconds for t in report.tables), 3),
        "repaired": sum(t.repaired.upserts + t.repaired.deletes for t in report.tables if t.repaired),
    }


def difference(pair: TablePair, suspect: Suspect) -> Difference:
    names = [c.name for c in pair.source.columns]
    target_names = [c.name for c in pair.target.columns]
    source = None if suspect.source_row is None else dict(zip(names, suspect.source_row, strict=True))
    target = None if suspect.target_row is None else dict(zip(target_names, suspect.target_row, strict=True))
    columns = []
    if suspect.source_row is not None and suspect.target_row is not None:
        columns = [n for n, a, b in zip(names, suspect.source_row, suspect.target_row, strict=True) if a != b]
    key = dict(zip(pair.source.key, suspect.key, strict=True))
    return Difference(key=key, columns=columns, source=source, target=target)


def waits_text(waits: Sequence[Wait]) -> list[str]:
    return [f"{w.outcome} after {w.seconds:.2f}s" for w in waits]


def _key_text(key: Texts) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items())


def table_lines(table: TableReport, *, limit: int) -> list[str]:
    where = "in the databases" if table.hashed_in == "database" else "here (rows read: types without an SQL form)"
    state = "equal" if not table.differences else f"{len(table.differences)} keys differ"
    lines = [
        f"`{table.source}` -> `{table.target}`: {table.ranges_checked} ranges checked, {table.source_rows} source "
        f"and {table.target_rows} target rows compared (hashed {where}) in {table.seconds:.1f}s: {state}"
    ]
    if table.rechecked:
        lines.append(f"  {table.rechecked} keys read again after the link caught up, {table.in_flight} were in flight")
    for diff in table.differences[:limit]:
        if diff.target is None:
            lines.append(f"  key {_key_text(diff.key)}: only at the source: {diff.source}")
        elif diff.source is None:
            lines.append(f"  key {_key_text(diff.key)}: only at the target: {diff.target}")
        else:
            target_names = dict(zip(diff.source, diff.target, strict=True))
            cells = "; ".join(
                f"{c}: source {diff.source[c]!r}, target {diff.target[target_names[c]]!r}" for c in diff.columns
            )
            lines.append(f"  key {_key_text(diff.key)}: {cells}")
    if len(table.differences) > limit:
        lines.append(f"  ... and {len(table.differences) - limit} more (--json lists them all)")
    if table.repaired is not None:
        audit = f", audit entry {table.repaired.audit_entry}" if table.repaired.audit_entry is not None else ""
        lines.append(
            f"  repaired: {table.repaired.upserts} rows written, {table.repaired.deletes} deleted at the target{audit}"
        )
    return lines
