"""Pieces of revisions, one module per part of the model, so each stays small and readable.

Like revisions, they never import schema.py: they build frozen copies of the tables.
"""
