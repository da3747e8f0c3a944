"""The example host app: tasks and their comments, the reference relaybridge host."""
