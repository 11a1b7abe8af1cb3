"""(being written)"""

from fastapi import APIRouter

page_router = APIRouter()
