"""The coordinator (one thread owns all state), the pure planner, policies, records and
the published snapshot."""
