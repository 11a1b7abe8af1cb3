"""(being written)"""

from fastapi import APIRouter

api_router = APIRouter(tags=["dataservices"])
page_router = APIRouter()
