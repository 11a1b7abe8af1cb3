"""Catalog pages: compile an entry, submit, review, versions and differences."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from govshare.catalog import schemas, service
from govshare.catalog.models import (
    BaseDatabase,
    CatalogEntry,
    CatalogKind,
    CatalogVersion,
    DataGrade,
    DataType,
    EntryStatus,
    ResourceFormat,
    ShareMethod,
    SubjectKeyKind,
    UpdateFrequency,
    VersionState,
)
from govshare.db import china_today
from govshare.deps import DbSession, require
from govshare.errors import DomainError, ValidationFailed
from govshare.orgs.models import Department
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.rules import service as rules_service
from govshare.web import FormDict, FormMulti, parse_form, redirect, render

router = APIRouter(prefix="/catalog")

Reader = Annotated[Principal, Depends(require(Perm.CATALOG_READ))]
Editor = Annotated[Principal, Depends(require(Perm.CATALOG_EDIT))]
Reviewer = Annotated[Principal, Depends(require(Perm.CATALOG_REVIEW))]

ITEM_ROW = re.compile(r"^items-(\d+)-(\w+)$")
ITEM_FLAGS = ("required", "personal", "sensitive", "checkdigit_warn")


def choices(db: Session, department: Department | None) -> dict[str, Any]:
    """Every select list of the entry form; share/open names from the department's rulebook."""
    book = rules_service.rulebook_for(db, department.jurisdiction if department else None)
    return {
        "kinds": [(k.value, k.label) for k in CatalogKind],
        "base_databases": [(b.value, b.label) for b in BaseDatabase],
        "formats": [(f.value, f.label) for f in ResourceFormat],
        "key_kinds": [(k.value, k.label) for k in SubjectKeyKind],
        "share_types": [
            (t, service.share_type_name(book, t))
            for t in ("unconditional", "conditional", "not_shared")
        ],
        "open_types": [
            (t, service.open_type_name(book, t))
            for t in ("unconditional", "conditional", "not_open")
        ],
        "methods": [(m.value, m.label) for m in ShareMethod],
        "frequencies": [(f.value, f.label) for f in UpdateFrequency],
        "grades": [(g.value, g.label) for g in DataGrade],
        "data_types": [(t.value, t.label) for t in DataType],
        "book": book,
    }


def form_to_version(form: dict[str, list[str]]) -> dict[str, Any]:
    """The entry form's fields as VersionIn input (data items come as items-N-attr rows)."""

    def one(name: str) -> str:
        return (form.get(name) or [""])[-1].strip()

    data: dict[str, Any] = {
        k: one(k)
        for k in (
            "catalog_kind",
            "item_code",
            "category_code",
            "base_database",
            "name",
            "summary",
            "resource_format",
            "subject_key_kind",
            "subject_key_item",
            "share_type",
            "share_scope",
            "share_purpose",
            "share_basis",
            "open_type",
            "open_conditions",
            "open_basis",
            "update_frequency",
            "data_grade",
            "returned_from",
            "change_note",
        )
    }
    data = {k: v for k, v in data.items() if v != "" or k in ("share_scope", "share_purpose")}
    data["share_methods"] = [m for m in form.get("share_methods", []) if m]
    data["is_returned_data"] = bool(one("is_returned_data"))
    data["is_classified"] = bool(one("is_classified"))
    codes = re.split(r"[\s,，、;；]+", one("related_codes"))
    data["related_codes"] = [c for c in codes if c]
    rows: dict[int, dict[str, Any]] = {}
    for key, values in form.items():
        m = ITEM_ROW.match(key)
        if m:
            rows.setdefault(int(m.group(1)), {})[m.group(2)] = values[-1].strip()
    items = []
    for _, row in sorted(rows.items()):
        if not row.get("name") and not row.get("field"):
            continue  # a blank row of the form
        item: dict[str, Any] = {
            k: row.get(k, "") for k in ("name", "field", "data_type", "description")
        }
        item["length"] = int(row["length"]) if row.get("length", "").isdigit() else None
        for flag in ITEM_FLAGS:
            item[flag] = bool(row.get(flag))
        item["share_type"] = row.get("share_type") or None
        item["enumeration"] = row.get("enumeration", "")
        items.append(item)
    data["data_items"] = items
    return data


def _items_for_form(
    version: CatalogVersion | None, form_items: list[dict[str, Any]] | None, blank: int = 3
) -> list[dict[str, Any]]:
    items = form_items if form_items is not None else (list(version.data_items) if version else [])
    return [*items, *({} for _ in range(blank))]


def _form_page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    version: CatalogVersion | None,
    entry: CatalogEntry | None,
    values: dict[str, Any] | None = None,
    error: DomainError | None = None,
) -> Response:
    department = (
        entry.department
        if entry
        else (db.get(Department, principal.department_id) if principal.department_id else None)
    )
    if values is None and version is not None:
        values = {k: getattr(version, k) for k in service.VERSION_FIELDS}
        values["change_note"] = version.change_note
    values = values or {
        "catalog_kind": "department",
        "category_code": "000",
        "open_type": "not_open",
        "data_grade": "general",
        "share_methods": ["query", "verification"],
    }
    ctx = {
        "v": values,
        "version": version,
        "entry": entry,
        "department": department,
        "items": _items_for_form(version, values.get("data_items") if values else None),
        "error": error.message if error else None,
        "error_field": error.field if error else None,
        **choices(db, department),
    }
    return render(
        request,
        "catalog/entry_form.html",
        ctx,
        status_code=error.status_code if error else 200,
        section="catalog_work",
    )


@router.get("/entries/new", response_class=HTMLResponse)
def entry_new(request: Request, db: DbSession, principal: Editor) -> Response:
    return _form_page(request, db, principal, version=None, entry=None)


@router.post("/entries", response_class=HTMLResponse)
def entry_create(request: Request, db: DbSession, principal: Editor, form: FormMulti) -> Response:
    values = form_to_version(form)
    try:
        data = parse_form(schemas.EntryCreate, values)
        version = service.create_entry(db, principal, data)
    except DomainError as exc:
        db.rollback()
        return _form_page(
            request, db, principal, version=None, entry=None, values=values, error=exc
        )
    return redirect(
        f"/catalog/entries/{version.entry_id}",
        f"已保存草稿：{version.name}（资源代码 {version.entry.code}）",
    )


@router.get("/versions/{version_id}/edit", response_class=HTMLResponse)
def version_edit(request: Request, db: DbSession, principal: Editor, version_id: int) -> Response:
    version = service.get_version(db, principal, version_id)
    return _form_page(request, db, principal, version=version, entry=version.entry)


@router.post("/versions/{version_id}/edit", response_class=HTMLResponse)
def version_update(
    request: Request, db: DbSession, principal: Editor, version_id: int, form: FormMulti
) -> Response:
    version = service.get_version(db, principal, version_id)
    values = form_to_version(form)
    try:
        service.update_version(db, principal, version, parse_form(schemas.VersionIn, values))
    except DomainError as exc:
        db.rollback()
        version = service.get_version(db, principal, version_id)
        return _form_page(
            request, db, principal, version=version, entry=version.entry, values=values, error=exc
        )
    return redirect(f"/catalog/entries/{version.entry_id}", f"已保存版本 {version.number}")


@router.get("/items/row", response_class=HTMLResponse)
def item_row(request: Request, db: DbSession, principal: Editor, i: int = 0) -> Response:
    """One more blank data-item row for the entry form (HTMX)."""
    department = db.get(Department, principal.department_id) if principal.department_id else None
    return render(
        request,
        "catalog/_item_row.html",
        {"i": max(0, min(i, 999)), "it": {}, **choices(db, department)},
    )


def _entry_page(
    request: Request,
    db: Session,
    principal: Principal,
    entry: CatalogEntry,
    error: DomainError | None = None,
) -> Response:
    book = service.rulebook_of(db, entry)
    versions = service.versions_of(db, principal, entry)
    pending = service.pending_version(db, entry)
    if pending is not None and not service.may_see_unpublished(db, principal, entry):
        pending = None
    shown = entry.current_version or pending
    cal = rules_service.calendar_for(db, entry.jurisdiction)
    days_left = None
    if pending is not None and pending.state == VersionState.SUBMITTED and pending.review_due:
        days_left = cal.working_days_left(china_today(), pending.review_due)
    ctx = {
        "entry": entry,
        "shown": shown,
        "pending": pending,
        "versions": versions,
        "book": book,
        "days_left": days_left,
        "may_edit": service.may_edit(principal, entry),
        "may_review": service.may_review(db, principal, entry),
        "may_withdraw": entry.status != EntryStatus.WITHDRAWN
        and (
            (
                principal.can(Perm.CATALOG_WITHDRAW)
                and principal.department_id == entry.department_id
            )
            or service.may_review(db, principal, entry)
        ),
        "share_name": service.share_type_name(book, shown.share_type) if shown else "",
        "open_name": service.open_type_name(book, shown.open_type) if shown else "",
        "labels": _labels(),
        "methods_label": service.share_methods_label,
        "error": error.message if error else None,
    }
    return render(
        request,
        "catalog/entry.html",
        ctx,
        status_code=error.status_code if error else 200,
        section="catalog",
    )


def _labels() -> dict[str, dict[str, str]]:
    return {
        "kind": {k.value: k.label for k in CatalogKind},
        "base": {b.value: b.label for b in BaseDatabase},
        "format": {f.value: f.label for f in ResourceFormat},
        "key": {k.value: k.label for k in SubjectKeyKind},
        "frequency": {f.value: f.label for f in UpdateFrequency},
        "grade": {g.value: g.label for g in DataGrade},
        "type": {t.value: t.label for t in DataType},
        "state": {s.value: s.label for s in VersionState},
        "status": {s.value: s.label for s in EntryStatus},
    }


@router.get("/entries/{entry_id}", response_class=HTMLResponse)
def entry_detail(request: Request, db: DbSession, principal: Reader, entry_id: int) -> Response:
    return _entry_page(request, db, principal, service.get_entry(db, principal, entry_id))


def _act(
    request: Request,
    db: Session,
    principal: Principal,
    entry: CatalogEntry,
    action: Any,
    done: str,
) -> Response:
    try:
        action()
    except DomainError as exc:
        if exc.status_code == 403:
            raise
        db.rollback()
        return _entry_page(
            request, db, principal, service.get_entry(db, principal, entry.id), error=exc
        )
    return redirect(f"/catalog/entries/{entry.id}", done)


@router.post("/versions/{version_id}/submit", response_class=HTMLResponse)
def version_submit(request: Request, db: DbSession, principal: Editor, version_id: int) -> Response:
    version = service.get_version(db, principal, version_id)
    return _act(
        request,
        db,
        principal,
        version.entry,
        lambda: service.submit(db, principal, version),
        "已提交审核",
    )


@router.post("/versions/{version_id}/discard", response_class=HTMLResponse)
def version_discard(
    request: Request, db: DbSession, principal: Editor, version_id: int
) -> Response:
    version = service.get_version(db, principal, version_id)
    return _act(
        request,
        db,
        principal,
        version.entry,
        lambda: service.discard(db, principal, version),
        "已放弃该版本",
    )


@router.post("/versions/{version_id}/review", response_class=HTMLResponse)
def version_review(
    request: Request, db: DbSession, principal: Reviewer, version_id: int, form: FormDict
) -> Response:
    version = service.get_version(db, principal, version_id)

    def run() -> None:
        service.review(db, principal, version, parse_form(schemas.ReviewIn, form))

    done = "审核通过，已发布" if form.get("decision") == "approve" else "已退回，并告知理由"
    return _act(request, db, principal, version.entry, run, done)


@router.post("/entries/{entry_id}/new-version", response_class=HTMLResponse)
def entry_new_version(
    request: Request, db: DbSession, principal: Editor, entry_id: int, form: FormDict
) -> Response:
    entry = service.get_entry(db, principal, entry_id)
    try:
        version = service.new_version(db, principal, entry, parse_form(schemas.NewVersionIn, form))
    except DomainError as exc:
        if exc.status_code == 403:
            raise
        db.rollback()
        return _entry_page(
            request, db, principal, service.get_entry(db, principal, entry_id), error=exc
        )
    return redirect(
        f"/catalog/versions/{version.id}/edit",
        f"已新建版本 {version.number}：修改后提交审核，审核通过前现行版本继续有效",
    )


@router.post("/entries/{entry_id}/withdraw", response_class=HTMLResponse)
def entry_withdraw(
    request: Request, db: DbSession, principal: Reader, entry_id: int, form: FormDict
) -> Response:
    entry = service.get_entry(db, principal, entry_id)
    return _act(
        request,
        db,
        principal,
        entry,
        lambda: service.withdraw(db, principal, entry, parse_form(schemas.WithdrawIn, form)),
        "资源已撤销（记录和全部版本保留）",
    )


@router.get("/versions/{version_id}", response_class=HTMLResponse)
def version_view(
    request: Request, db: DbSession, principal: Reader, version_id: int, to: int | None = None
) -> Response:
    """One version, and its differences with another version of the same entry."""
    version = service.get_version(db, principal, version_id)
    entry = version.entry
    other = None
    changes: list[schemas.FieldChange] = []
    if to is not None:
        other = service.get_version(db, principal, to)
        if other.entry_id != entry.id:
            raise ValidationFailed("两个版本不属于同一资源", field="to")
        changes = service.diff(version, other)
    book = service.rulebook_of(db, entry)
    return render(
        request,
        "catalog/version.html",
        {
            "entry": entry,
            "version": version,
            "other": other,
            "changes": changes,
            "versions": service.versions_of(db, principal, entry),
            "labels": _labels(),
            "share_name": service.share_type_name(book, version.share_type),
            "open_name": service.open_type_name(book, version.open_type),
            "methods_label": service.share_methods_label,
        },
        section="catalog",
    )


@router.get("/work", response_class=HTMLResponse)
def work(request: Request, db: DbSession, principal: Editor) -> Response:
    """My department's catalog: every entry with its state and what is waiting."""
    entries = service.entries_for(db, principal, department_id=principal.department_id)
    rows = []
    for e in entries:
        pending = service.pending_version(db, e)
        shown = e.current_version or pending
        rows.append({"entry": e, "pending": pending, "name": shown.name if shown else ""})
    return render(
        request, "catalog/work.html", {"rows": rows, "labels": _labels()}, section="catalog_work"
    )


@router.get("/review", response_class=HTMLResponse)
def review_queue(request: Request, db: DbSession, principal: Reviewer) -> Response:
    queue = service.review_queue(db, principal)
    today = china_today()
    rows = []
    for v in queue:
        cal = rules_service.calendar_for(db, v.entry.jurisdiction)
        left = cal.working_days_left(today, v.review_due) if v.review_due else None
        rows.append({"v": v, "left": left})
    return render(
        request,
        "catalog/review.html",
        {"rows": rows, "labels": _labels(), "reports": service.reports_to(db, principal)},
        section="catalog_review",
    )


@router.post("/reports/{report_id}/acknowledge", response_class=HTMLResponse)
def report_acknowledge(
    request: Request, db: DbSession, principal: Reviewer, report_id: int
) -> Response:
    """The city confirms a county's reported catalog change."""
    report = service.acknowledge_report(db, principal, report_id)
    return redirect("/catalog/review", f"已确认 {report.from_jurisdiction.name} 的目录报备")
