"""Import every domain's models so that ``Base.metadata`` is complete (Alembic, tests)."""

from govshare.audit import models as audit_models
from govshare.catalog import models as catalog_models
from govshare.dataservices import models as dataservices_models
from govshare.db import Base
from govshare.ingestion import models as ingestion_models
from govshare.ingestion import source_models as ingestion_source_models
from govshare.notifications import models as notifications_models
from govshare.orgs import models as orgs_models
from govshare.rules import models as rules_models
from govshare.sharing import models as sharing_models

__all__ = [
    "Base",
    "audit_models",
    "catalog_models",
    "dataservices_models",
    "ingestion_models",
    "ingestion_source_models",
    "notifications_models",
    "orgs_models",
    "rules_models",
    "sharing_models",
]
