"""GitHub's value rules: truthiness, number and string conversion, loose equality and ordering.

Values are plain Python data: None, bool, int or float, str, list and dict. Numbers follow
JavaScript's double; strings convert to numbers the way JavaScript's ``Number()`` does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)\Z")
_RADIX = {"x": (16, "0123456789abcdefABCDEF"), "o": (8, "01234567"), "b": (2, "01")}
# JavaScript's white space and line terminators, which Number() trims.
_JS_SPACE = (
    " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_DOTLESS_I = "\u0131"


def string_to_number(text: str) -> float:
    """JavaScript's ``Number(text)``: '' is 0, hex/octal/binary prefixes, Infinity, else NaN."""
    s = text.strip(_JS_SPACE)
    if not s:
        return 0.0
    if s.isascii() and s.isdigit():
        return float(s)
    if _DECIMAL.match(s):
        return float(s)
    if s in ("Infinity", "+Infinity"):
        return math.inf
    if s == "-Infinity":
        return -math.inf
    if len(s) > 2 and s[0] == "0" and s[1].lower() in _RADIX:
        base, digits = _RADIX[s[1].lower()]
        if all(c in digits for c in s[2:]):
            return float(int(s[2:], base))
    return math.nan


def to_number(value: Any) -> float:
    """A value as a number: null 0, false 0, true 1, strings by Number(), arrays and objects NaN."""
    if value is None:
        return 0.0
    if value is True:
        return 1.0
    if value is False:
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return string_to_number(value)
    return math.nan


def js_number_text(value: float) -> str:
    """JavaScript's ``String(number)``: shortest round-trip digits, exponent outside 1e-7..1e21."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exp = repr(abs(float(value))).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + (int(exp) if exp else 0)  # position of the point relative to whole+frac
    if whole == "0":
        stripped = frac.lstrip("0")
        point = (int(exp) if exp else 0) - (len(frac) - len(stripped))
        digits = stripped
    digits = digits.rstrip("0") or "0"
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    rest = "." + digits[1:] if k > 1 else ""
    return f"{sign}{digits[0]}{rest}e{'+' if e >= 0 else '-'}{abs(e)}"


def number_text(value: float) -> str:
    """A number as GitHub writes it in text: at most 15 decimals, no trailing zeros, 3 not 3.0."""
    if value == 0 or value != value or math.isinf(value) or abs(value) >= 1e21:
        return js_number_text(value)
    return js_number_text(float(f"{value:.15f}"))


def to_text(value: Any) -> str:
    """A value as a string: null '', booleans 'true'/'false', numbers as GitHub writes them."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**15 else number_text(float(value))
    if isinstance(value, float):
        return number_text(value)
    return "Object" if isinstance(value, Mapping) else "Array"


def is_primitive(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float)


def truthy(value: Any) -> bool:
    """False for null, false, 0, NaN and ''; true for everything else, every array and object too."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return value != ""
    if isinstance(value, int | float):
        return value == value and value != 0
    return True


def upper(text: str) -> str:
    """Upper case for case-insensitive comparison, leaving the dotless i alone as GitHub does."""
    if _DOTLESS_I not in text:
        return text.upper()
    return _DOTLESS_I.join(part.upper() for part in text.split(_DOTLESS_I))


def _coerce(left: Any, right: Any) -> tuple[Any, Any, int]:
    """Both sides brought to one kind by GitHub's rules (0 null, 1 number, 2 string, 3 bool, 4 other)."""
    lk, rk = _kind(left), _kind(right)
    if lk == rk:
        return left, right, lk
    if lk in (0, 3):
        return _coerce(to_number(left), right)
    if rk in (0, 3):
        return _coerce(left, to_number(right))
    if lk == 1 and rk == 2:
        return left, string_to_number(right), 1
    if lk == 2 and rk == 1:
        return string_to_number(left), right, 1
    return left, right, -1


def _kind(value: Any) -> int:
    if value is None:
        return 0
    if value is True or value is False:
        return 3
    if isinstance(value, int | float):
        return 1
    if isinstance(value, str):
        return 2
    return 4


def equals(left: Any, right: Any) -> bool:
    """GitHub's ``==``: loose coercion, strings ignoring case, arrays and objects by identity."""
    if type(left) is str and type(right) is str:
        return left == right or upper(left) == upper(right)
    a, b, kind = _coerce(left, right)
    if kind == 0:
        return True
    if kind in (1, 3):
        return bool(a == b)
    if kind == 2:
        return upper(a) == upper(b)
    if kind == 4:
        return a is b
    return False


def less(left: Any, right: Any) -> bool:
    """GitHub's ``<`` after coercion; NaN, arrays, objects and mixed kinds compare false."""
    a, b, kind = _coerce(left, right)
    if kind == 1:
        return bool(a < b)
    if kind == 2:
        return upper(a) < upper(b)
    if kind == 3:
        return not a and b is True
    return False


def greater(left: Any, right: Any) -> bool:
    """GitHub's ``>``, the mirror of ``less``."""
    return less(right, left)
