"""The peer of benchmarks/exchange.py: a bare FastAPI endpoint that returns a constant.

It parses nothing (no body, no headers, no database): what FastAPI and uvicorn cost by
themselves for a POST answered with a small JSON object, on the same server settings as the
platform.

    uvicorn exchange_bare_app:app --app-dir benchmarks --loop uvloop --http httptools
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()

ANSWER = {"subject_found": True, "results": {"name": "match", "birth_date": "match"}}


@app.post("/bare")
async def bare() -> dict[str, object]:
    return ANSWER
