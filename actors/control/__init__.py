"""The control plane: the supervisor's managers (streams, shards, audit feed, conflicts, re-syncs, status).

They direct the actors and track small acknowledgements; event data moves between the actors themselves
(capture actors put their slices in Ray's object store, shards and the audit actor fetch them).
"""
