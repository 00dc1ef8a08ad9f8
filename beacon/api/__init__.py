"""The HTTP API (FastAPI): routes, problem+json errors, RBAC, middleware."""

from beacon.api.app import create_app

__all__ = ["create_app"]
