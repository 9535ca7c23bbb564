"""The run pipeline: one export run, from the selected profiles to committed sync state.

``selection`` (which profiles) → ``mapper`` (profile → destination record) → ``planner`` (diff
against sync state: typed steps) → ``batcher`` (steps → batches the writer accepts) →
``dispatcher`` (batches in flight, retries, the credential's governor) → ``commit`` (one
transaction per acknowledged batch); ``engine`` drives them for one :class:`RunRequest`.
"""
