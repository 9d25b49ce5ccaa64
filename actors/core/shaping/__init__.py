"""Shaping what flows: column selection, masking in flight and row filters, per captured table.

A table is shaped where it is captured (the capture actor runs :class:`~actors.core.shaping.shape.Shaper` from
its routing plan), so shards, targets and the audit log only ever see the shaped change. Pure: no Ray, no
drivers.
"""
