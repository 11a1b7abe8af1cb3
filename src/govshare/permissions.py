"""Roles and permissions. A permission is ``domain:resource:action``."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    AUTHORITY = "authority"
    DEPT_OFFICER = "dept_officer"
    DEPT_REVIEWER = "dept_reviewer"
    DEPT_HEAD = "dept_head"
    OPERATOR = "operator"
    PUBLIC = "public"
    SYSTEM = "system"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS: dict[Role, str] = {
    Role.AUTHORITY: "数据主管部门",
    Role.DEPT_OFFICER: "部门数据专员",
    Role.DEPT_REVIEWER: "部门审核人",
    Role.DEPT_HEAD: "部门主要负责人",
    Role.OPERATOR: "技术服务单位",
    Role.PUBLIC: "公众用户",
    Role.SYSTEM: "业务系统",
}

#: roles that belong to a department (a user with one of them must have a department)
DEPARTMENT_ROLES = frozenset(
    {Role.AUTHORITY, Role.DEPT_OFFICER, Role.DEPT_REVIEWER, Role.DEPT_HEAD, Role.SYSTEM}
)


class Perm(StrEnum):
    SELF_READ = "orgs:self:read"
    SELF_PASSWORD = "orgs:self:password"  # noqa: S105 - a permission name, not a secret
    JURISDICTION_READ = "orgs:jurisdiction:read"
    JURISDICTION_MANAGE = "orgs:jurisdiction:manage"
    DEPARTMENT_READ = "orgs:department:read"
    DEPARTMENT_MANAGE = "orgs:department:manage"
    CONTACT_READ = "orgs:contact:read"
    CONTACT_FILE_OWN = "orgs:contact:file_own"
    CONTACT_FILE_ANY = "orgs:contact:file_any"
    USER_READ = "orgs:user:read"
    USER_MANAGE = "orgs:user:manage"
    CREDENTIAL_READ = "orgs:credential:read"
    CREDENTIAL_MANAGE = "orgs:credential:manage"
    RULEBOOK_READ = "rules:rulebook:read"
    RULEBOOK_ASSIGN = "rules:rulebook:assign"
    CALENDAR_READ = "rules:calendar:read"
    CALENDAR_MANAGE = "rules:calendar:manage"
    CATALOG_READ = "catalog:entry:read"
    CATALOG_EDIT = "catalog:entry:edit"
    CATALOG_REVIEW = "catalog:entry:review"
    CATALOG_WITHDRAW = "catalog:entry:withdraw"
    CATALOG_EXPORT = "catalog:entry:export"
    CATALOG_CHANGE_RECORD = "catalog:change:record"
    DEMAND_FILE = "catalog:demand:file"
    DEMAND_MATCH = "catalog:demand:match"
    CATALOG_LISTS = "catalog:list:read"
    INGEST_READ = "ingestion:batch:read"
    INGEST_UPLOAD = "ingestion:batch:upload"
    INGEST_PUSH = "ingestion:batch:push"
    RECORD_READ = "ingestion:record:read"
    RECORD_DELETE_REQUEST = "ingestion:record:delete_request"
    RECORD_DELETE_REVIEW = "ingestion:record:delete_review"
    QUALITY_READ = "ingestion:quality:read"
    SOURCE_READ = "ingestion:source:read"
    SOURCE_MANAGE = "ingestion:source:manage"
    SHARE_READ = "sharing:application:read"
    SHARE_APPLY = "sharing:application:apply"
    SHARE_REVIEW = "sharing:application:review"
    #: the data authority: compliance checks, and decisions where its rulebook makes it
    #: the reviewer (seed 003 art. 12)
    SHARE_CHECK = "sharing:application:check"
    SERVICE_READ = "dataservices:service:read"
    #: the technical service unit publishes data services (seed 003 art. 13)
    SERVICE_PUBLISH = "dataservices:service:publish"
    #: receive granted data through a service (query, verification, batch export)
    SERVICE_CALL = "dataservices:service:call"
    #: quotas and rate limits of grants
    SERVICE_LIMIT = "dataservices:grant:limit"
    #: the usage ledger: one's own department's (as consumer and as provider); the
    #: authority's covers its jurisdiction and those below (seed 004 art. 18)
    LEDGER_READ = "dataservices:ledger:read"
    STATS_READ = "dataservices:stats:read"
    AUDIT_READ = "audit:log:read"
    AUDIT_VERIFY = "audit:log:verify"
    AUDIT_PURGE = "audit:log:purge"


_STAFF_BASE = {
    Perm.SELF_READ,
    Perm.SELF_PASSWORD,
    Perm.JURISDICTION_READ,
    Perm.DEPARTMENT_READ,
    Perm.CONTACT_READ,
    Perm.RULEBOOK_READ,
    Perm.CALENDAR_READ,
    Perm.CATALOG_READ,
    Perm.CATALOG_EXPORT,
    Perm.CATALOG_LISTS,
    Perm.QUALITY_READ,
    Perm.SOURCE_READ,
    Perm.SERVICE_READ,
    Perm.STATS_READ,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Perm]] = {
    Role.AUTHORITY: frozenset(Perm),
    Role.DEPT_OFFICER: frozenset(
        _STAFF_BASE
        | {
            Perm.CONTACT_FILE_OWN,
            Perm.CATALOG_EDIT,
            Perm.CATALOG_CHANGE_RECORD,
            Perm.DEMAND_FILE,
            Perm.INGEST_READ,
            Perm.INGEST_UPLOAD,
            Perm.INGEST_PUSH,
            Perm.RECORD_READ,
            Perm.RECORD_DELETE_REQUEST,
            Perm.SHARE_READ,
            Perm.SHARE_APPLY,
            Perm.SERVICE_CALL,
            Perm.LEDGER_READ,
        }
    ),
    Role.DEPT_REVIEWER: frozenset(
        _STAFF_BASE | {Perm.SHARE_READ, Perm.SHARE_REVIEW, Perm.LEDGER_READ}
    ),
    Role.DEPT_HEAD: frozenset(
        _STAFF_BASE
        | {
            Perm.CONTACT_FILE_OWN,
            Perm.CREDENTIAL_READ,
            Perm.CATALOG_EDIT,
            Perm.CATALOG_WITHDRAW,
            Perm.CATALOG_CHANGE_RECORD,
            Perm.DEMAND_FILE,
            Perm.INGEST_READ,
            Perm.INGEST_UPLOAD,
            Perm.RECORD_READ,
            Perm.RECORD_DELETE_REQUEST,
            Perm.SHARE_READ,
            Perm.SHARE_APPLY,
            Perm.SHARE_REVIEW,
            Perm.SERVICE_CALL,
            Perm.LEDGER_READ,
        }
    ),
    Role.OPERATOR: frozenset(
        _STAFF_BASE
        | {
            Perm.USER_READ,
            Perm.CREDENTIAL_READ,
            Perm.AUDIT_VERIFY,
            Perm.SERVICE_PUBLISH,
            Perm.SERVICE_LIMIT,
        }
    ),
    Role.PUBLIC: frozenset({Perm.SELF_READ, Perm.SELF_PASSWORD}),
    Role.SYSTEM: frozenset(
        {Perm.SELF_READ, Perm.INGEST_PUSH, Perm.SERVICE_READ, Perm.SERVICE_CALL, Perm.LEDGER_READ}
    ),
}


def permissions_for(role: Role) -> frozenset[Perm]:
    return ROLE_PERMISSIONS[role]
