"""The shipped rulebooks: they load, say what their seeds say, and cite articles that exist.

No database is needed: rulebooks are YAML files merged onto ``national.yaml``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from govshare.rules.loader import BOOKS_DIR, NATIONAL, Registry, RulebookError, load_dir
from govshare.rules.rulebook import SEED_FILES, Citation

SEEDS_DIR = Path(__file__).resolve().parents[3] / "shared" / "seeds"

#: the rulebook shipped for each seed
SEED_BOOKS = {
    "000": "pingshan-2026",
    "001": "county-2024",
    "002": "xiayi-2021",
    "003": "nanyang-2021",
    "004": "neixiang-2017",
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_dir()


# ---------------------------------------------------------------- loading


def test_every_shipped_rulebook_loads(registry: Registry) -> None:
    assert set(registry.names()) == {NATIONAL, *SEED_BOOKS.values()}
    assert registry.names()[0] == NATIONAL
    for name in registry.names():
        book = registry.get(name)
        assert book.name == name
        assert book.violations


def test_each_seed_rulebook_cites_only_its_own_seed(registry: Registry) -> None:
    for seed, name in SEED_BOOKS.items():
        raw = registry.raw[name]
        assert raw["source"] == f"shared/seeds/{SEED_FILES[seed]}"
        # issued and summary are inherited when left out: every seed book sets its own
        assert "issued" in raw
        assert raw.get("summary")
        assert registry.get(name).issued != registry.get(NATIONAL).issued
        cites = list(_citations(raw))
        assert cites, f"{name} sets no rule"
        for cite in cites:
            assert cite["origin"] == "seed", f"{name}: {cite}"
            assert cite["seed"] == seed, f"{name}: {cite}"


# ---------------------------------------------------------------- what each seed says


def test_pingshan_000(registry: Registry) -> None:
    book = registry.get("pingshan-2026")
    reply = book.sharing.conditional_reply
    assert reply.working_days == 10
    assert (reply.cite.seed, reply.cite.article) == ("000", "第十六条")
    assert book.sharing.reviewer.value == "provider"
    assert book.sharing.supplement.once is True
    assert book.sharing.supplement.cite.seed == "000"
    assert book.sharing.dispute_coordinator.value == "authority"
    assert book.sharing.dispute_final.value == "government"
    decide = book.corrections.decide
    assert (decide.working_days, decide.extension_working_days) == (10, 10)
    assert decide.extension_approver == "dept_head"
    assert decide.cite.article == "第二十一条"
    assert len(book.violations) == 9
    assert book.violations[3].cite.article == "第三十条第（四）项"


def test_county_001(registry: Registry) -> None:
    book = registry.get("county-2024")
    types = book.share_types
    assert types.not_shared.name == "暂不共享"
    assert types.conditional.basis_required
    assert types.not_shared.basis_required
    assert types.not_shared.cite.seed == "001"
    assert book.issued is None
    # the seed sets no deadline: the national default applies
    assert book.sharing.conditional_reply.working_days == 10
    assert book.sharing.conditional_reply.cite.origin == "national"
    assert [v.cite.article for v in book.violations] == [
        f"第二十六条第（{n}）项" for n in "一二三四五六七"
    ]


def test_xiayi_002(registry: Registry) -> None:
    book = registry.get("xiayi-2021")
    reply = book.sharing.conditional_reply
    assert reply.working_days == 5
    assert (reply.cite.seed, reply.cite.article) == ("002", "四(三)")
    assert book.sharing.reviewer.value == "provider"
    update = book.catalog.update_after_change
    assert update.working_days == 10
    assert (update.cite.seed, update.cite.article) == ("002", "二(三)")
    # share types are not in the notice: inherited
    assert book.share_types.not_shared.cite.origin == "national"


def test_nanyang_003(registry: Registry) -> None:
    book = registry.get("nanyang-2021")
    # the seed says nothing of the reply period: inherited from national.yaml
    assert book.sharing.conditional_reply.working_days == 10
    assert book.sharing.conditional_reply.cite.origin == "national"
    assert book.sharing.reviewer.value == "authority"
    assert book.sharing.reviewer.cite.article == "第十二条"
    assert book.sharing.interface_extension is not None
    assert book.sharing.interface_extension.working_days == 5
    assert book.sharing.prefer_query_over_batch is not None
    assert book.sharing.prefer_query_over_batch.value == "yes"
    assert book.catalog.update_after_change.working_days == 5
    assert book.catalog.authority_review.working_days == 5
    assert book.catalog.report_to_city is not None
    assert book.catalog.report_to_city.working_days == 5
    decide = book.corrections.decide
    assert decide.working_days == 5
    assert decide.extension_working_days == 0
    assert decide.extension_approver is None
    assert decide.cite.seed == "003"
    assert book.corrections.fix_after_decision is not None
    assert book.corrections.fix_after_decision.working_days == 10
    assert book.logs.retention_months == 6
    assert (book.reports.department_annual_due, book.reports.authority_annual_due) == (
        "01-31",
        "02-28",
    )
    assert book.opendata.catalog_objection_reply.extension_working_days == 10
    assert len({v.code for v in book.violations}) == len(book.violations) == 13
    articles = [str(v.cite.article) for v in book.violations]
    assert sum(a.startswith("第六十二条") for a in articles) == 8
    assert sum(a.startswith("第六十七条") for a in articles) == 5


def test_neixiang_004(registry: Registry) -> None:
    book = registry.get("neixiang-2017")
    types = book.share_types
    assert (types.unconditional.name, types.conditional.name, types.not_shared.name) == (
        "强制共享",
        "条件共享",
        "不予共享",
    )
    assert types.not_shared.basis_required
    reply = book.sharing.conditional_reply
    assert reply.working_days == 7
    assert reply.cite.seed == "004"
    assert book.sharing.reviewer.value == "provider"
    assert book.sharing.dispute_coordinator.cite.seed == "004"
    assert book.sharing.agreement_sharing is not None
    assert book.sharing.agreement_sharing.value == "filed_with_authority"
    assert len(book.violations) == 5


# ---------------------------------------------------------------- inheritance


def test_county_under_city_inherits_from_the_city(registry: Registry) -> None:
    book = registry.resolve(["nanyang-2021", "neixiang-2017"])
    assert book.name == "neixiang-2017"
    assert book.sharing.conditional_reply.working_days == 7  # the county's own
    assert book.sharing.conditional_reply.cite.seed == "004"
    assert book.sharing.reviewer.value == "authority"  # the city's
    assert book.sharing.reviewer.cite.seed == "003"
    assert book.logs.retention_months == 6
    assert (book.logs.cite.seed, book.logs.cite.article) == ("003", "第三十三条")
    assert book.catalog.report_to_city is not None  # the city's
    assert book.violations[0].cite.seed == "004"  # lists replace, never concatenate
    assert len(book.violations) == 5


def test_city_alone_inherits_from_national(registry: Registry) -> None:
    book = registry.resolve(["nanyang-2021"])
    assert book.sharing.conditional_reply.working_days == 10
    assert book.sharing.conditional_reply.cite.origin == "national"
    assert book.sharing.dispute_final.value == "government"
    assert registry.resolve([NATIONAL, "nanyang-2021"]) == book


def test_overrides_are_whole(registry: Registry) -> None:
    """A seed never mixes its number with an inherited citation (dicts deep-merge)."""
    national = registry.raw[NATIONAL]
    for name in SEED_BOOKS.values():
        for path, node in _dicts(registry.raw[name]):
            if path and path[-1] == "cite":
                continue
            valued = {"working_days", "value", "code", "name", "once", "retention_months"}
            if path and valued & node.keys():
                assert "cite" in node, f"{name}: {'.'.join(path)} has no cite"
            if "code" in node and "name" in node:  # a share/open type: no stale description
                assert {"description", "basis_required"} <= node.keys(), f"{name}: {path}"
            if "once" in node:
                assert "clock" in node, f"{name}: {'.'.join(path)}"
            inherited = _at(national, path)
            extended = isinstance(inherited, dict) and inherited.get("extension_working_days")
            if "working_days" in node and extended:
                assert "extension_working_days" in node, f"{name}: {'.'.join(path)}"
                assert "extension_approver" in node, f"{name}: {'.'.join(path)}"


# ---------------------------------------------------------------- citations exist in the seeds

NUM = "零一二三四五六七八九十百"
ARTICLE = re.compile(rf"第([{NUM}]+)条(?:第[（(]([{NUM}]+)[)）]项)?")
SECTION = re.compile(rf"([{NUM}]+)[（(]([{NUM}]+)[)）]")
ARTICLE_IN_TEXT = re.compile(rf"第[{NUM}]+[条條]")
#: seeds 003 and 004 are in traditional characters; the numerals are the same
TO_TRADITIONAL = str.maketrans({"条": "條"})


def _numeral(text: str) -> int:
    digits = {c: i for i, c in enumerate("零一二三四五六七八九")}
    if text == "十":
        return 10
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (digits[tens] if tens else 1) * 10 + (digits[ones] if ones else 0)
    return digits[text]


def _missing(seed: str, article: str, text: str) -> list[str]:
    """The parts of ``article`` that are not in the seed's text (empty: all found)."""
    missing = []
    for part in article.split("、"):
        if m := ARTICLE.fullmatch(part):
            heading = f"第{m[1]}条"
            at = max(text.find(heading), text.find(heading.translate(TO_TRADITIONAL)))
            if at < 0:
                missing.append(part)
                continue
            if m[2]:
                nxt = ARTICLE_IN_TEXT.search(text, at + len(heading))
                body = text[at : nxt.start() if nxt else len(text)]
                if not _has_item(seed, body, m[2]):
                    missing.append(part)
        elif m := SECTION.fullmatch(part):
            start = re.search(rf"^\s*{m[1]}、", text, re.M)
            if start is None:
                missing.append(part)
                continue
            end = re.search(rf"^\s*[{NUM}]+、", text[start.end() :], re.M)
            body = text[start.end() : start.end() + end.start() if end else len(text)]
            if not re.search(rf"[（(]{m[2]}[)）]", body):
                missing.append(part)
        else:
            missing.append(part)  # a form the check cannot verify is never accepted
    return missing


def _has_item(seed: str, body: str, item: str) -> bool:
    if re.search(rf"[（(]{item}[)）]", body):
        return True
    if seed == "003":
        # seed 003's item markers are garbled ("?。ㄒ唬" for "（一）"): count its item lines
        return sum(line.startswith("?。") for line in body.splitlines()) >= _numeral(item)
    return False


def _seed_text(seed: str) -> str:
    if not SEEDS_DIR.is_dir():
        pytest.skip(f"seed texts not found at {SEEDS_DIR}")
    return (SEEDS_DIR / SEED_FILES[seed]).read_text(encoding="utf-8")


def test_every_seed_citation_names_an_article_of_its_seed(registry: Registry) -> None:
    checked = 0
    for name, raw in registry.raw.items():
        for cite in _citations(raw):
            citation = Citation.model_validate(cite)
            if citation.origin != "seed":
                continue
            assert citation.seed is not None
            assert citation.article is not None
            missing = _missing(citation.seed, citation.article, _seed_text(citation.seed))
            assert not missing, f"{name}: {citation.text}: not in the seed: {missing}"
            checked += 1
    assert checked > 50


@pytest.mark.parametrize(
    ("seed", "article"),
    [
        ("003", "第九十九条"),
        ("003", "第三十六条、第九十九条"),
        ("000", "第三十条第（十一）项"),
        ("004", "第二十六条第（七）项"),
        ("003", "第六十七条第（九）项"),
        ("002", "七(一)"),
        ("002", "四(九)"),
        ("001", "Art. 16"),
    ],
)
def test_the_citation_check_catches_articles_that_do_not_exist(seed: str, article: str) -> None:
    assert _missing(seed, article, _seed_text(seed))


@pytest.mark.parametrize(
    ("seed", "article"),
    [
        ("003", "第六十二条第（八）项"),
        ("004", "第十六条第（三）项"),
        ("000", "第三十条第（九）项"),
        ("002", "二(三)"),
    ],
)
def test_the_citation_check_finds_articles_that_exist(seed: str, article: str) -> None:
    assert _missing(seed, article, _seed_text(seed)) == []


def test_numerals() -> None:
    assert [_numeral(t) for t in ("一", "十", "十三", "二十", "六十七")] == [1, 10, 13, 20, 67]


# ---------------------------------------------------------------- invalid input is rejected

GOOD_CITE = {"origin": "seed", "seed": "003", "article": "第二十二条"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(
            {
                "sharing": {
                    "conditional_reply": {
                        "working_days": 5,
                        "cite": {"origin": "seed", "seed": "003"},
                    }
                }
            },
            "must name the article",
            id="seed-citation-without-article",
        ),
        pytest.param(
            {"logs": {"retention_months": 3, "cite": GOOD_CITE}},
            "retention_months",
            id="retention-3-months",
        ),
        pytest.param(
            {
                "corrections": {
                    "decide": {
                        "working_days": 5,
                        "extension_working_days": 5,
                        "extension_approver": None,
                        "cite": GOOD_CITE,
                    }
                }
            },
            "an extension needs an approver",
            id="extension-without-approver",
        ),
        pytest.param(
            {"name": "something-else"},
            "must match the file name",
            id="name-not-filename",
        ),
        pytest.param(
            {"sharing": {"conditional_replay": {"working_days": 5, "cite": GOOD_CITE}}},
            "conditional_replay",
            id="misspelt-key",
        ),
        pytest.param(
            {
                "sharing": {
                    "conditional_reply": {
                        "working_days": 5,
                        "cite": {"origin": "seed", "seed": "009", "article": "第一条"},
                    }
                }
            },
            "seed citation must name one of",
            id="unknown-seed",
        ),
    ],
)
def test_invalid_rulebooks_are_rejected(tmp_path: Path, body: dict[str, Any], error: str) -> None:
    _write(tmp_path, "bad", body)
    with pytest.raises(RulebookError, match=error):
        load_dir(tmp_path)


def test_a_valid_override_in_a_temp_dir_loads(tmp_path: Path) -> None:
    """The control for the test above: the same file with valid values loads."""
    body = {"sharing": {"conditional_reply": {"working_days": 5, "cite": GOOD_CITE}}}
    _write(tmp_path, "good", body)
    registry = load_dir(tmp_path)
    assert registry.names() == [NATIONAL, "good"]
    assert registry.get("good").sharing.conditional_reply.working_days == 5


def test_a_rulebook_must_set_its_own_keys(tmp_path: Path) -> None:
    shutil.copy(BOOKS_DIR / "national.yaml", tmp_path)
    (tmp_path / "bare.yaml").write_text("name: bare\n", encoding="utf-8")
    with pytest.raises(RulebookError, match="must set title, issuer, source"):
        load_dir(tmp_path)


# ---------------------------------------------------------------- helpers


def _write(directory: Path, name: str, body: dict[str, Any]) -> None:
    shutil.copy(BOOKS_DIR / "national.yaml", directory)
    data = {"name": name, "title": "测试", "issuer": "测试", "source": "test", **body}
    (directory / f"{name}.yaml").write_text(
        yaml.safe_dump(data, allow_unicode=True), encoding="utf-8"
    )


def _dicts(
    node: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _dicts(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _dicts(value, (*path, str(i)))


def _citations(raw: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path, node in _dicts(raw):
        if path and path[-1] == "cite":
            yield node


def _at(raw: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = raw
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def test_a_local_citation_replaces_the_inherited_one_whole() -> None:
    """A seed's citation must not pick up the national default's note by merging."""
    registry = load_dir()
    national = registry.get("national").share_types.unconditional.cite
    nanyang = registry.get("nanyang-2021").share_types.unconditional.cite
    assert national.note
    assert (nanyang.origin, nanyang.seed, nanyang.article) == ("seed", "003", "第三十六条")
    assert nanyang.note != national.note
