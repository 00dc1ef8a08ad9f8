"""``GET /metrics``: Prometheus exposition text (see beacon.metrics)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from beacon.metrics import render

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics"}},
)
async def metrics() -> Response:
    body, content_type = render()
    return Response(body, media_type=content_type)
