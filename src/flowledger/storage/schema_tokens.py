"""Tables of the service face's tokens (revision 0003), on the shared metadata."""

from __future__ import annotations

from sqlalchemy import Column, String, Table, UniqueConstraint

from flowledger.storage.schema import UTCDateTime, metadata

#: API tokens of ``flowledger serve``. Only the SHA-256 of a token is kept (a token is
#: 256 random bits: a fast hash cannot be brute-forced); a revoked token keeps its row
#: (``revoked_at``) until a token of the same name is created again.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False),
    #: ``viewer``, ``operator`` or ``admin``.
    Column("role", String(16), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    #: When the token stops working (revision 0015); null: never.
    Column("expires_at", UTCDateTime),
    #: Who created it (revision 0017): ``api-token:NAME`` or ``cli:USER``, as an
    #: execution's ``created_by``; null for the tokens made before it was recorded.
    Column("created_by", String(200)),
    UniqueConstraint("name", name="uq_api_tokens_name"),
    UniqueConstraint("secret_hash", name="uq_api_tokens_secret_hash"),
)
