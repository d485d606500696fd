"""The runtime: scheduler, data store and engine."""
