"""One data item, one source (一数一源): repeat-collection flags and conflicts."""

from __future__ import annotations

from fastapi import APIRouter

api_router = APIRouter(tags=["ingestion"])
page_router = APIRouter()
