"""Timeliness and quality of aggregated data: pages and JSON API."""

from __future__ import annotations

from fastapi import APIRouter

api_router = APIRouter(tags=["ingestion"])
page_router = APIRouter()
