"""The rulebook model.

A rulebook is a YAML file in ``rules/books/`` holding every number and name that the local
regulations differ on. Each rule cites its source. A rulebook may leave things out: what it
leaves out is inherited from the rulebook of the parent jurisdiction, and at the top from
the national default (``national.yaml``). Files are validated at start-up after merging
onto the national default, so a typo or a missing citation stops the platform.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SEED_FILES = {
    "000": "000_3b4cbf3f1481be46.txt",
    "001": "001_d7aa909524cfaca5.txt",
    "002": "002_23f9d25d3725c656.txt",
    "003": "003_1af7b5c44ea26f00.txt",
    "004": "004_175c12186eaff765.txt",
}
#: how a citation names each regulation to the platform's users
SEED_TITLES = {
    "000": "《平山县政务数据共享工作制度》",
    "001": "《2024年政务数据资源管理办法》",
    "002": "夏“放管服”组办〔2021〕12号",
    "003": "《南阳市政务数据共享管理暂行办法》",
    "004": "《内乡县政务信息资源共享管理办法（试行）》",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(_Strict):
    """Where a rule comes from.

    ``seed``: one of the five local regulations in ``shared/seeds`` (``seed`` + ``article``);
    ``national``: the 2025 State Council regulation on government data sharing
    (政务数据共享条例), not a seed; ``platform``: a default chosen by govshare where no text
    sets a value (``note`` says why).
    """

    origin: Literal["seed", "national", "platform"]
    seed: str | None = None
    article: str | None = None
    note: str = ""

    @model_validator(mode="after")
    def _check(self) -> Citation:
        if self.origin == "seed":
            if self.seed not in SEED_FILES:
                raise ValueError(f"seed citation must name one of {sorted(SEED_FILES)}")
            if not self.article:
                raise ValueError("seed citation must name the article (条/款/项 or section)")
        elif self.seed is not None:
            raise ValueError("only seed citations name a seed")
        if self.origin == "platform" and not self.note:
            raise ValueError("a platform default must say why in its note")
        return self

    @property
    def text(self) -> str:
        if self.origin == "seed":
            assert self.seed is not None
            article = self.article or ""
            # an article (第二十二条) follows the title; a section of a notice (二(三)) is spaced
            return SEED_TITLES[self.seed] + ("" if article.startswith("第") else " ") + article
        if self.origin == "national":
            return "《政务数据共享条例》（国家默认）" + (f" {self.article}" if self.article else "")
        return "平台默认值（无条文规定）"


class NamedType(_Strict):
    code: str
    name: str
    description: str = ""
    #: entries of this type must cite a legal basis
    basis_required: bool = False
    cite: Citation


class ShareTypes(_Strict):
    unconditional: NamedType
    conditional: NamedType
    not_shared: NamedType


class OpenTypes(_Strict):
    unconditional: NamedType
    conditional: NamedType
    not_open: NamedType


class Deadline(_Strict):
    """A period counted in working days (the day of receipt is not counted)."""

    working_days: int = Field(ge=1, le=90)
    extension_working_days: int = Field(default=0, ge=0, le=90)
    extension_approver: Literal["dept_head", "authority"] | None = None
    cite: Citation

    @model_validator(mode="after")
    def _check(self) -> Deadline:
        if self.extension_working_days and self.extension_approver is None:
            raise ValueError("an extension needs an approver")
        if not self.extension_working_days and self.extension_approver is not None:
            raise ValueError("an approver without an extension")
        return self


class SupplementRule(_Strict):
    """Asking once for all missing material (一次性告知)."""

    once: bool
    #: on resubmission the reply period ``restart``s in full, or ``resume``s what was left
    clock: Literal["restart", "resume"]
    cite: Citation


class Choice(_Strict):
    value: str
    cite: Citation


class SharingRules(_Strict):
    #: who reviews a conditional application: the providing department, the data
    #: authority, or an authority compliance check followed by the provider
    reviewer: Choice
    conditional_reply: Deadline
    #: authority compliance check of unconditional requests, where a rulebook asks for it
    compliance_check: Deadline | None = None
    supplement: SupplementRule
    #: providers asked for more service interfaces may get a written extension
    interface_extension: Deadline | None = None
    #: who coordinates a dispute first, then who decides
    dispute_coordinator: Choice
    dispute_final: Choice
    #: the authority's period for coordinating a dispute (none of the seeds sets one; the
    #: national book carries a platform default)
    dispute_coordination: Deadline | None = None
    agreement_sharing: Choice | None = None
    prefer_query_over_batch: Choice | None = None

    @model_validator(mode="after")
    def _check(self) -> SharingRules:
        allowed = {"provider", "authority", "authority_then_provider"}
        if self.reviewer.value not in allowed:
            raise ValueError(f"sharing.reviewer.value must be one of {sorted(allowed)}")
        return self


class CatalogRules(_Strict):
    #: a department files the catalog update after a law or its duties change
    update_after_change: Deadline
    #: the authority reviews an update request
    authority_review: Deadline
    #: a county reports changed catalog/responsibility lists to the city
    report_to_city: Deadline | None = None


class CorrectionRules(_Strict):
    #: the provider checks (校核) and decides on a correction request
    decide: Deadline
    #: after deciding to correct, the provider fixes the data at the source and re-aggregates
    fix_after_decision: Deadline | None = None
    business_continues: Choice


class OpenDataRules(_Strict):
    catalog_objection_reply: Deadline
    conditional_application_reply: Deadline


class LogRules(_Strict):
    retention_months: int = Field(ge=6, le=600)
    cite: Citation


class ReportRules(_Strict):
    department_annual_due: str = Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
    authority_annual_due: str = Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
    cite: Citation


class Violation(_Strict):
    code: str
    text: str
    cite: Citation


class Rulebook(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    issuer: str
    issued: date | None = None
    source: str
    summary: str = ""
    share_types: ShareTypes
    open_types: OpenTypes
    sharing: SharingRules
    catalog: CatalogRules
    corrections: CorrectionRules
    opendata: OpenDataRules
    logs: LogRules
    reports: ReportRules
    violations: list[Violation]

    @model_validator(mode="after")
    def _check(self) -> Rulebook:
        codes = [v.code for v in self.violations]
        if len(set(codes)) != len(codes):
            raise ValueError("violation codes must be unique")
        if not self.violations:
            raise ValueError("a rulebook lists at least one violation")
        return self


#: keys a rulebook file must set itself (never inherited)
OWN_KEYS = ("name", "title", "issuer", "source")


#: mappings that are replaced whole, never merged: a citation belongs to the value beside it
REPLACED_WHOLE = frozenset({"cite"})


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Dicts merge key by key; lists, scalars and citations in ``override`` replace."""
    out = dict(base)
    for key, value in override.items():
        if key in REPLACED_WHOLE:
            out[key] = value
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
