"""Benchmarks (not timed tests): each reports its figures next to a raw `eventsourcing` baseline."""
