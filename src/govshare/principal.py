"""Who is acting: a logged-in user, a department system's app credential, or the platform."""

from __future__ import annotations

from dataclasses import dataclass, field

from govshare.permissions import Perm, Role, permissions_for


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" | "credential" | "system" | "anonymous"
    id: int | None
    name: str
    role: Role | None
    department_id: int | None = None
    jurisdiction_id: int | None = None
    ip: str = ""
    permissions: frozenset[Perm] = field(default_factory=frozenset)

    def can(self, perm: Perm) -> bool:
        return perm in self.permissions

    @property
    def role_code(self) -> str:
        return self.role.value if self.role else ""

    @classmethod
    def platform(cls, name: str = "govshare", ip: str = "cli") -> Principal:
        """The platform itself (CLI commands run by the server's operator, jobs)."""
        return cls(
            kind="system",
            id=None,
            name=name,
            role=Role.AUTHORITY,
            ip=ip,
            permissions=permissions_for(Role.AUTHORITY),
        )

    @classmethod
    def anonymous(cls, ip: str = "") -> Principal:
        return cls(kind="anonymous", id=None, name="匿名", role=None, ip=ip)
