"""Building unified social credit codes (GB 32100) for demo data and tests.

Real codes are issued by registration authorities; the platform only *checks* them (with
python-stdnum). This module builds syntactically valid codes for fictional departments.
"""

from __future__ import annotations

from stdnum.cn import uscc

_ORG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def organization_code(base8: str) -> str:
    """The 9-character organization code (GB 11714) for an 8-character body."""
    total = sum(_ORG_ALPHABET.index(c) * w for c, w in zip(base8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return base8 + ("X" if check == 10 else "0" if check == 11 else str(check))


def credit_code(division: str, sequence: int, *, authority: str = "1", kind: str = "1") -> str:
    """A valid code for a government organ (登记管理部门 1 = 机构编制, 类别 1 = 机关)."""
    body = authority + kind + division + organization_code(f"{sequence:08d}")
    code = body + uscc.calc_check_digit(body)
    uscc.validate(code)
    return code
