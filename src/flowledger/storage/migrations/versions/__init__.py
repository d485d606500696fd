"""Alembic revision scripts, one per schema change (``vNNNN_<what>.py``)."""
