"""The HTTP face (SPEC §6): FastAPI routes over the application layer.

A route parses the request, calls one operation of :class:`flowledger.app.App` and
renders its result; rules live in the application layer. ``create_api(app, settings)``
builds the ASGI application; ``flowledger serve`` runs it on uvicorn.
"""

from flowledger.api.server import ApiSettings, create_api

__all__ = ["ApiSettings", "create_api"]
