"""The entity store: typed JSON records with schemas, and the outbox of their events."""
