"""Rulebook resolution and assignment; the working-day calendar's data."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.db import utcnow
from govshare.errors import NotFound, PermissionDenied, ValidationFailed
from govshare.orgs import repository as orgs_repo
from govshare.orgs.models import Jurisdiction
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.rules.loader import NATIONAL, RulebookError, registry
from govshare.rules.models import CalendarDay, CalendarYear, DayKind
from govshare.rules.rulebook import Choice, Citation, Deadline, NamedType, Rulebook
from govshare.rules.schemas import parse_kind
from govshare.rules.workdays import DayInfo, Due, WorkdayCalendar

# ---------------------------------------------------------------- rulebooks


@dataclass(frozen=True)
class EffectiveRulebook:
    book: Rulebook
    #: rulebook names applied, outermost first (the national default is always the base)
    chain: tuple[str, ...]
    #: the jurisdiction whose own rulebook setting is nearest (None: national default)
    set_by: Jurisdiction | None
    #: the jurisdictions from the outermost ancestor down to the one asked about
    lineage: tuple[Jurisdiction, ...] = ()


def _effective(session: Session, jurisdiction: Jurisdiction, own: str | None) -> EffectiveRulebook:
    """The effective rulebook of ``jurisdiction`` if its own setting were ``own``."""
    lineage = orgs_repo.jurisdiction_lineage(session, jurisdiction)
    settings = [(j, own if j.id == jurisdiction.id else j.rulebook) for j in lineage]
    chain: list[str] = [NATIONAL]
    for _j, name in settings:
        if name and name != chain[-1]:
            chain.append(name)
    set_by = next((j for j, name in reversed(settings) if name), None)
    return EffectiveRulebook(registry().resolve(tuple(chain)), tuple(chain), set_by, tuple(lineage))


def rulebook_chain(session: Session, jurisdiction: Jurisdiction | None) -> EffectiveRulebook:
    if jurisdiction is None:
        return EffectiveRulebook(registry().get(NATIONAL), (NATIONAL,), None)
    return _effective(session, jurisdiction, jurisdiction.rulebook)


def rulebook_for(session: Session, jurisdiction: Jurisdiction | None) -> Rulebook:
    return rulebook_chain(session, jurisdiction).book


def get_rulebook(name: str) -> Rulebook:
    if name not in registry():
        raise NotFound(f"没有名为 {name} 的规则")
    return registry().get(name)


def jurisdiction_by_code(session: Session, code: str) -> Jurisdiction:
    jurisdiction = orgs_repo.jurisdiction_by_code(session, code)
    if jurisdiction is None:
        raise NotFound(f"行政区划代码 {code} 不存在")
    return jurisdiction


def effective_for_code(session: Session, code: str) -> EffectiveRulebook:
    return rulebook_chain(session, jurisdiction_by_code(session, code))


def preview_rulebook(
    session: Session, jurisdiction: Jurisdiction, name: str | None
) -> EffectiveRulebook:
    """What ``jurisdiction``'s effective rulebook would be with its own setting ``name``."""
    if name is not None:
        get_rulebook(name)
    try:
        return _effective(session, jurisdiction, name)
    except RulebookError as exc:
        raise ValidationFailed(
            f"规则 {name} 与上级行政区的规则合并后无效：{exc}", field="rulebook"
        ) from None


def assign_rulebook(
    session: Session, actor: Principal, jurisdiction: Jurisdiction, name: str | None
) -> Jurisdiction:
    if not actor.can(Perm.RULEBOOK_ASSIGN):
        raise PermissionDenied()
    name = (name or "").strip() or None
    if name is not None and name not in registry():
        raise ValidationFailed(f"没有名为 {name} 的规则", field="rulebook")
    before = jurisdiction.rulebook
    preview_rulebook(session, jurisdiction, name)  # the merged chain must validate
    jurisdiction.rulebook = name
    try:  # and so must the chain of every jurisdiction below it
        for j in orgs_repo.list_jurisdictions(session):
            if j.id != jurisdiction.id and any(
                a.id == jurisdiction.id for a in orgs_repo.jurisdiction_lineage(session, j)
            ):
                rulebook_chain(session, j)
    except RulebookError as exc:
        jurisdiction.rulebook = before
        raise ValidationFailed(
            f"规则 {name} 与下级行政区的规则合并后无效：{exc}", field="rulebook"
        ) from None
    session.flush()
    audit.record(
        session,
        actor,
        "rules:rulebook:assign",
        "jurisdiction",
        jurisdiction.id,
        {"code": jurisdiction.code, "before": before, "after": name},
    )
    return jurisdiction


@dataclass(frozen=True)
class RulebookUsage:
    book: Rulebook
    #: jurisdictions that set this rulebook themselves
    assigned: tuple[Jurisdiction, ...]
    #: jurisdictions for which it is the nearest setting through an ancestor
    inherited: tuple[Jurisdiction, ...]


def rulebook_usage(session: Session) -> list[RulebookUsage]:
    """Every shipped rulebook (the national default first) and who uses it."""
    jurisdictions = orgs_repo.list_jurisdictions(session)
    by_id = {j.id: j for j in jurisdictions}
    assigned: dict[str, list[Jurisdiction]] = {}
    inherited: dict[str, list[Jurisdiction]] = {}
    for j in jurisdictions:
        if j.rulebook:
            assigned.setdefault(j.rulebook, []).append(j)
            continue
        current, seen, name = j, {j.id}, NATIONAL
        while current.parent_id is not None and current.parent_id not in seen:
            parent = by_id.get(current.parent_id)
            if parent is None:
                break
            if parent.rulebook:
                name = parent.rulebook
                break
            seen.add(parent.id)
            current = parent
        inherited.setdefault(name, []).append(j)
    return [
        RulebookUsage(
            registry().get(name),
            tuple(assigned.get(name, ())),
            tuple(inherited.get(name, ())),
        )
        for name in registry().names()
    ]


@dataclass(frozen=True)
class RuleLine:
    """One rule as shown to people: what it governs, its value, and where it comes from."""

    label: str
    value: str
    cite: Citation

    @property
    def citation(self) -> str:
        return self.cite.text

    @property
    def note(self) -> str:
        return self.cite.note

    @property
    def origin(self) -> str:
        return self.cite.origin


@dataclass(frozen=True)
class RuleSection:
    key: str
    title: str
    lines: tuple[RuleLine, ...]


CHOICE_LABELS = {
    "provider": "数据提供部门",
    "authority": "数据主管部门",
    "authority_then_provider": "数据主管部门合规审查后由数据提供部门审核",
    "government": "本级人民政府",
    "filed_with_authority": "签订共享协议并报数据主管部门备案",
    "yes": "是",
    "no": "否",
}
APPROVER_LABELS = {"dept_head": "部门主要负责人", "authority": "数据主管部门"}


def _deadline_text(d: Deadline) -> str:
    text = f"{d.working_days} 个工作日"
    if d.extension_working_days:
        approver = APPROVER_LABELS.get(d.extension_approver or "", d.extension_approver or "")
        text += f"；经{approver}同意可延长不超过 {d.extension_working_days} 个工作日"
    return text


def _named_text(t: NamedType) -> str:
    text = f"代码 {t.code}：{t.name}"
    if t.description:
        text += f"。{t.description}"
    if t.basis_required:
        text += "（须列明法律、法规或政策依据）"
    return text


def _choice_text(c: Choice) -> str:
    return CHOICE_LABELS.get(c.value, c.value)


def _month_day(text: str) -> str:
    month, day = text.split("-")
    return f"每年 {int(month)} 月 {int(day)} 日前"


def describe_rulebook(book: Rulebook) -> list[RuleSection]:
    """Every rule of ``book`` in Chinese with its value and citation, grouped as on paper."""
    sh, op, sg = book.share_types, book.open_types, book.sharing
    sharing: list[RuleLine] = [
        RuleLine("有条件共享申请的审核主体", _choice_text(sg.reviewer), sg.reviewer.cite),
        RuleLine(
            "有条件共享申请的答复时限",
            _deadline_text(sg.conditional_reply),
            sg.conditional_reply.cite,
        ),
    ]
    if sg.compliance_check is not None:
        sharing.append(
            RuleLine(
                "无条件共享申请的合规审查时限",
                _deadline_text(sg.compliance_check),
                sg.compliance_check.cite,
            )
        )
    sharing.append(
        RuleLine(
            "申请材料不全",
            ("一次性告知需补正的全部材料" if sg.supplement.once else "可多次要求补正")
            + "；"
            + (
                "补正后答复期限重新计算"
                if sg.supplement.clock == "restart"
                else "补正后接续计算剩余期限"
            ),
            sg.supplement.cite,
        )
    )
    if sg.interface_extension is not None:
        sharing.append(
            RuleLine(
                "增加服务接口的书面延期",
                _deadline_text(sg.interface_extension),
                sg.interface_extension.cite,
            )
        )
    sharing += [
        RuleLine(
            "共享争议的协调", _choice_text(sg.dispute_coordinator), sg.dispute_coordinator.cite
        ),
        RuleLine("协调不成的决定", _choice_text(sg.dispute_final), sg.dispute_final.cite),
    ]
    if sg.agreement_sharing is not None:
        sharing.append(
            RuleLine("协议共享", _choice_text(sg.agreement_sharing), sg.agreement_sharing.cite)
        )
    if sg.prefer_query_over_batch is not None:
        sharing.append(
            RuleLine(
                "接口查询或核验可满足时原则上不批量交换",
                _choice_text(sg.prefer_query_over_batch),
                sg.prefer_query_over_batch.cite,
            )
        )
    cat = book.catalog
    catalog = [
        RuleLine(
            "法律法规或职责变化后更新目录",
            _deadline_text(cat.update_after_change),
            cat.update_after_change.cite,
        ),
        RuleLine(
            "数据主管部门审核目录更新",
            _deadline_text(cat.authority_review),
            cat.authority_review.cite,
        ),
    ]
    if cat.report_to_city is not None:
        catalog.append(
            RuleLine(
                "县级目录变化向市级报备",
                _deadline_text(cat.report_to_city),
                cat.report_to_city.cite,
            )
        )
    co = book.corrections
    corrections = [RuleLine("核实并作出是否更正的决定", _deadline_text(co.decide), co.decide.cite)]
    if co.fix_after_decision is not None:
        corrections.append(
            RuleLine(
                "决定更正后完成更正并重新汇聚",
                _deadline_text(co.fix_after_decision),
                co.fix_after_decision.cite,
            )
        )
    corrections.append(
        RuleLine(
            "校核期间业务照常办理", _choice_text(co.business_continues), co.business_continues.cite
        )
    )
    od = book.opendata
    return [
        RuleSection(
            "share_types",
            "共享类型",
            (
                RuleLine("无条件共享", _named_text(sh.unconditional), sh.unconditional.cite),
                RuleLine("有条件共享", _named_text(sh.conditional), sh.conditional.cite),
                RuleLine("不予共享", _named_text(sh.not_shared), sh.not_shared.cite),
            ),
        ),
        RuleSection(
            "open_types",
            "开放类型",
            (
                RuleLine("无条件开放", _named_text(op.unconditional), op.unconditional.cite),
                RuleLine("有条件开放", _named_text(op.conditional), op.conditional.cite),
                RuleLine("不予开放", _named_text(op.not_open), op.not_open.cite),
            ),
        ),
        RuleSection("sharing", "共享申请", tuple(sharing)),
        RuleSection("catalog", "目录", tuple(catalog)),
        RuleSection("corrections", "校核", tuple(corrections)),
        RuleSection(
            "opendata",
            "开放",
            (
                RuleLine(
                    "对开放目录异议的答复",
                    _deadline_text(od.catalog_objection_reply),
                    od.catalog_objection_reply.cite,
                ),
                RuleLine(
                    "有条件开放申请的答复",
                    _deadline_text(od.conditional_application_reply),
                    od.conditional_application_reply.cite,
                ),
            ),
        ),
        RuleSection(
            "logs",
            "日志",
            (
                RuleLine(
                    "日志保存期限", f"不少于 {book.logs.retention_months} 个月", book.logs.cite
                ),
            ),
        ),
        RuleSection(
            "reports",
            "年报",
            (
                RuleLine(
                    "部门年度工作报告",
                    _month_day(book.reports.department_annual_due),
                    book.reports.cite,
                ),
                RuleLine(
                    "数据主管部门年度报告",
                    _month_day(book.reports.authority_annual_due),
                    book.reports.cite,
                ),
            ),
        ),
        RuleSection(
            "violations",
            "违规情形",
            tuple(
                RuleLine(f"（{i}）{v.code}", v.text, v.cite)
                for i, v in enumerate(book.violations, start=1)
            ),
        ),
    ]


def longest_log_retention_months(session: Session) -> int:
    """Audit retention for the whole platform: the longest any jurisdiction's rulebook asks."""
    months = rulebook_for(session, None).logs.retention_months
    for j in orgs_repo.list_jurisdictions(session):
        months = max(months, rulebook_for(session, j).logs.retention_months)
    return months


# ---------------------------------------------------------------- calendar

HOLIDAY_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}
MAX_CSV_BYTES = 1_000_000
#: the calendar's range: dates outside it are refused rather than computed
MIN_YEAR, MAX_YEAR = 1900, 2999
KIND_CHOICES = "工作日/休息日/节假日/调休上班"


def _require(actor: Principal, perm: Perm) -> None:
    if not actor.can(perm):
        raise PermissionDenied()


def package_years() -> range:
    import chinese_calendar

    years = sorted({d.year for d in chinese_calendar.holidays})
    return range(years[0], years[-1] + 1)


def _package_year_days(year: int) -> list[tuple[date, DayKind, str]]:
    import chinese_calendar

    out = []
    d = date(year, 1, 1)
    while d.year == year:
        workday = chinese_calendar.is_workday(d)
        _on_holiday, raw_name = chinese_calendar.get_holiday_detail(d)
        name = HOLIDAY_NAMES.get(raw_name or "", raw_name or "")
        if workday:
            kind = DayKind.WORKDAY if d.weekday() < 5 else DayKind.ADJUSTED_WORKDAY
            if kind is DayKind.ADJUSTED_WORKDAY:
                name = f"{name}调休上班" if name else "调休上班"
            else:
                name = ""
        else:
            kind = DayKind.HOLIDAY if name else DayKind.WEEKEND
        out.append((d, kind, name))
        d += timedelta(days=1)
    return out


def _store_year(
    session: Session, year: int, days: list[tuple[date, DayKind, str]], source: str, by: str
) -> None:
    session.execute(
        delete(CalendarDay).where(
            CalendarDay.scope == "",
            CalendarDay.day >= date(year, 1, 1),
            CalendarDay.day <= date(year, 12, 31),
        )
    )
    session.add_all(
        CalendarDay(
            scope="",
            day=d,
            kind=k.value,
            is_workday=k.is_workday,
            name=n,
            source=source,
            updated_by=by,
        )
        for d, k, n in days
    )
    existing = session.get(CalendarYear, year)
    if existing is None:
        session.add(CalendarYear(year=year, source=source, loaded_by=by))
    else:
        existing.source, existing.loaded_by = source, by
        existing.loaded_at = utcnow()
    session.flush()


def seed_from_package(
    session: Session, actor: Principal, years: Iterable[int] | None = None
) -> list[int]:
    """Load the years the chinese-calendar package knows (all, or only ``years``) that the
    table does not have yet."""
    _require(actor, Perm.CALENDAR_MANAGE)
    have = set(session.scalars(select(CalendarYear.year)))
    available = package_years()
    wanted = available if years is None else sorted(y for y in set(years) if y in available)
    added = [y for y in wanted if y not in have]
    for year in added:
        _store_year(session, year, _package_year_days(year), "chinese-calendar", actor.name)
    if added:
        audit.record(
            session,
            actor,
            "rules:calendar:seed",
            "calendar",
            f"{added[0]}-{added[-1]}",
            {"years": added, "source": "chinese-calendar"},
        )
    return added


_HEADERS = {
    "日期": "date",
    "date": "date",
    "类型": "kind",
    "kind": "kind",
    "名称": "name",
    "name": "name",
    "说明": "name",
}
_DATE_RE = re.compile(r"^(\d{4})(?:[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d{2})(\d{2}))$")


def parse_day(text: str) -> date | None:
    """A date as people write it: 2026-10-01, 2026/10/1, 2026.10.1, 2026年10月1日, 20261001."""
    m = _DATE_RE.match(text.strip())
    if m is None:
        return None
    year, month, day = m.group(1), m.group(2) or m.group(4), m.group(3) or m.group(5)
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def require_kind(text: str) -> DayKind:
    kind = parse_kind(text)
    if kind is None:
        raise ValidationFailed(f"类型“{text}”无效，应为 {KIND_CHOICES}", field="kind")
    return kind


def _decode(content: bytes) -> str:
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(enc)
        except UnicodeDecodeError:
            continue
    raise ValidationFailed("文件编码无法识别，请使用 UTF-8 或 GB18030 编码的 CSV", field="file")


@dataclass(frozen=True)
class ImportResult:
    year: int
    days_listed: int
    holidays: int
    adjusted_workdays: int
    scope: str = ""


def _parse_rows(text: str) -> tuple[dict[date, tuple[DayKind, str]], list[str]]:
    reader = csv.reader(io.StringIO(text))
    cols: list[str | None] = []
    listed: dict[date, tuple[DayKind, str]] = {}
    errors: list[str] = []
    for row in reader:
        if not any(cell.strip() for cell in row) or row[0].strip().startswith("#"):
            continue
        if not cols:  # the first non-blank line is the header
            cols = [_HEADERS.get(h.strip().lower()) for h in row]
            if "date" not in cols or "kind" not in cols:
                raise ValidationFailed("表头须包含“日期”和“类型”两列（可选“名称”）", field="file")
            continue
        lineno = reader.line_num
        rec = {c: (row[i].strip() if i < len(row) else "") for i, c in enumerate(cols) if c}
        day = parse_day(rec["date"])
        if day is None:
            errors.append(f"第 {lineno} 行：日期“{rec['date']}”不是 YYYY-MM-DD 格式")
            continue
        kind = parse_kind(rec["kind"])
        if kind is None:
            errors.append(f"第 {lineno} 行：类型“{rec['kind']}”无效，应为 {KIND_CHOICES}")
            continue
        if day in listed:
            errors.append(f"第 {lineno} 行：日期 {day} 重复")
            continue
        if kind is DayKind.WORKDAY and day.weekday() >= 5:
            kind = DayKind.ADJUSTED_WORKDAY
        if kind is DayKind.WEEKEND and day.weekday() < 5:
            kind = DayKind.HOLIDAY
        listed[day] = (kind, rec.get("name", "")[:64])
    if not cols:
        raise ValidationFailed("文件是空的", field="file")
    return listed, errors


def import_year_csv(
    session: Session, actor: Principal, content: bytes, *, scope: str = ""
) -> ImportResult:
    """Import one year's calendar from CSV (columns 日期,类型,名称).

    For the national calendar (scope ""), days not listed follow Monday-Friday and the year
    becomes known. For a jurisdiction's scope, only the listed days are stored as overrides.
    """
    _require(actor, Perm.CALENDAR_MANAGE)
    scope = scope.strip()
    if scope:
        jurisdiction_by_code(session, scope)
    if len(content) > MAX_CSV_BYTES:
        raise ValidationFailed("文件过大：一年的日历不应超过 1 MB", field="file")
    text = _decode(content)
    if "\x00" in text:
        raise ValidationFailed("文件不是 CSV 文本文件", field="file")
    try:
        listed, errors = _parse_rows(text)
    except csv.Error as exc:
        raise ValidationFailed(f"CSV 格式有误：{exc}", field="file") from None
    if errors:
        raise ValidationFailed(
            "；".join(errors[:20]) + (f" 等共 {len(errors)} 处错误" if len(errors) > 20 else ""),
            field="file",
        )
    if not listed:
        raise ValidationFailed("文件中没有任何日期", field="file")
    years = {d.year for d in listed}
    if len(years) != 1:
        raise ValidationFailed(
            f"一次只能导入一个年度，文件中包含 {', '.join(map(str, sorted(years)))}", field="file"
        )
    year = years.pop()
    _check_year(date(year, 1, 1), "file")
    if scope:
        for d, (k, n) in listed.items():
            _upsert_day(session, scope, d, k, n, "import", actor.name)
        session.flush()
    else:
        days = []
        d = date(year, 1, 1)
        while d.year == year:
            if d in listed:
                days.append((d, *listed[d]))
            else:
                days.append((d, DayKind.WORKDAY if d.weekday() < 5 else DayKind.WEEKEND, ""))
            d += timedelta(days=1)
        _store_year(session, year, days, "import", actor.name)
    result = ImportResult(
        year=year,
        days_listed=len(listed),
        holidays=sum(1 for k, _ in listed.values() if k is DayKind.HOLIDAY),
        adjusted_workdays=sum(1 for k, _ in listed.values() if k is DayKind.ADJUSTED_WORKDAY),
        scope=scope,
    )
    audit.record(
        session,
        actor,
        "rules:calendar:import",
        "calendar_year",
        year,
        {
            "scope": scope,
            "days_listed": result.days_listed,
            "holidays": result.holidays,
            "adjusted_workdays": result.adjusted_workdays,
        },
    )
    return result


def template_csv() -> bytes:
    """A CSV template (UTF-8 with BOM, so that Excel opens it correctly): the header and, as
    an example, every holiday and adjusted working day of the latest year chinese-calendar
    knows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["日期", "类型", "名称"])
    for d, kind, name in _package_year_days(package_years()[-1]):
        if kind in (DayKind.HOLIDAY, DayKind.ADJUSTED_WORKDAY):
            writer.writerow([d.isoformat(), kind.label, name])
    return out.getvalue().encode("utf-8-sig")


def _upsert_day(
    session: Session, scope: str, day: date, kind: DayKind, name: str, source: str, by: str
) -> tuple[dict[str, object] | None, CalendarDay]:
    row = session.scalar(
        select(CalendarDay).where(CalendarDay.scope == scope, CalendarDay.day == day)
    )
    before: dict[str, object] | None = None
    if row is None:
        row = CalendarDay(scope=scope, day=day)
        session.add(row)
    else:
        before = {"kind": row.kind, "is_workday": row.is_workday, "name": row.name}
    row.kind, row.is_workday, row.name = kind.value, kind.is_workday, name
    row.source, row.updated_by = source, by
    return before, row


def set_day(
    session: Session, actor: Principal, day: date, kind: DayKind, name: str = "", *, scope: str = ""
) -> CalendarDay:
    _require(actor, Perm.CALENDAR_MANAGE)
    _check_year(day, "day")
    if kind is DayKind.WORKDAY and day.weekday() >= 5:
        raise ValidationFailed("周末上班的日子请选择“调休上班”", field="kind")
    if kind is DayKind.WEEKEND and day.weekday() < 5:
        raise ValidationFailed("周一至周五放假的日子请选择“节假日”", field="kind")
    if kind is DayKind.ADJUSTED_WORKDAY and day.weekday() < 5:
        raise ValidationFailed("周一至周五本来就是工作日，请选择“工作日”", field="kind")
    scope = scope.strip()
    if scope:
        jurisdiction_by_code(session, scope)
    before, row = _upsert_day(session, scope, day, kind, name.strip()[:64], "manual", actor.name)
    session.flush()
    audit.record(
        session,
        actor,
        "rules:calendar:edit",
        "calendar_day",
        f"{scope or 'national'}:{day}",
        {
            "before": before,
            "after": {"kind": row.kind, "is_workday": row.is_workday, "name": row.name},
        },
    )
    return row


def calendar_for(session: Session, jurisdiction: Jurisdiction | None) -> WorkdayCalendar:
    if jurisdiction is None:
        return WorkdayCalendar(session)
    lineage = orgs_repo.jurisdiction_lineage(session, jurisdiction)
    return WorkdayCalendar(session, [j.code for j in reversed(lineage)])


def _check_year(day: date, field: str) -> None:
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ValidationFailed(f"日期应在 {MIN_YEAR} 年到 {MAX_YEAR} 年之间", field=field)


def due_date(
    session: Session, received: date, days: int, jurisdiction_code: str | None = None
) -> Due:
    jurisdiction = jurisdiction_by_code(session, jurisdiction_code) if jurisdiction_code else None
    if days < 0 or days > 365:
        raise ValidationFailed("工作日数应在 0 到 365 之间", field="days")
    _check_year(received, "received")
    try:
        return calendar_for(session, jurisdiction).due(received, days)
    except ValueError:  # three years without a working day: a broken calendar
        raise ValidationFailed(
            "自收到日期起三年内没有工作日，请检查工作日历", field="received"
        ) from None


def known_years(session: Session) -> list[CalendarYear]:
    return list(session.scalars(select(CalendarYear).order_by(CalendarYear.year)))


def coverage_warnings(session: Session, today: date) -> list[str]:
    """Warnings for the authority: this year or next year has no calendar on file."""
    have = {y.year for y in known_years(session)}
    out = []
    for year in (today.year, today.year + 1):
        if year not in have:
            out.append(
                f"{year} 年的工作日历尚未导入：涉及该年的期限暂按周一至周五计算并标为“临时”，"
                f"请在国务院办公厅发布放假安排后导入或逐日维护。"
            )
    return out


def year_days(session: Session, year: int, scope: str = "") -> list[CalendarDay]:
    return list(
        session.scalars(
            select(CalendarDay)
            .where(CalendarDay.scope == scope)
            .where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31))
            .order_by(CalendarDay.day)
        )
    )


@dataclass(frozen=True)
class YearView:
    year: int
    #: the jurisdiction whose local overrides are applied (None: the national calendar)
    jurisdiction: Jurisdiction | None
    #: the national calendar of this year is on file
    known: bool
    #: where it came from (None when not on file)
    source: CalendarYear | None
    #: every day of the year as seen from ``jurisdiction``
    days: tuple[DayInfo, ...]

    @property
    def special(self) -> list[DayInfo]:
        """Days that are not ordinary: holidays, adjusted working days, local overrides."""
        return [
            d
            for d in self.days
            if d.kind in (DayKind.HOLIDAY, DayKind.ADJUSTED_WORKDAY) or d.scope or d.name
        ]

    @property
    def workdays(self) -> int:
        return sum(1 for d in self.days if d.is_workday)


def year_view(session: Session, year: int, jurisdiction_code: str | None = None) -> YearView:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValidationFailed(f"年份应在 {MIN_YEAR} 到 {MAX_YEAR} 之间", field="year")
    jurisdiction = jurisdiction_by_code(session, jurisdiction_code) if jurisdiction_code else None
    cal = calendar_for(session, jurisdiction)
    days = tuple(cal.days_of_year(year))
    return YearView(
        year, jurisdiction, cal.is_known_year(year), session.get(CalendarYear, year), days
    )
