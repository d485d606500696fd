"""Artifacts: files that steps save, and step outputs too large for the data store."""
