"""Address normalisation (Chinese and Western): one canonical text per address."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

__all__ = [
    "normalize_address",
    "normalize_many",
]


# ---------------------------------------------------------------------------
# Character classes
# ---------------------------------------------------------------------------

# CJK scripts (radicals, kana, ideographs, compatibility ideographs, the
# supplementary ideograph planes).  Whitespace next to these is dropped.
_CJK = "\u2e80-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
# Ideographs only: their presence selects the Chinese parser.
_IDEO = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
# A letter or digit that is not CJK (hyphens survive only between two of them).
_WORD = rf"[^\W_{_CJK}]"

# Strings made only of these characters need no Unicode / punctuation work.
_PLAIN_RE = re.compile(r"[0-9a-z\u4e00-\u9fff]*")
# Outputs made only of these characters are fixed points of the pipeline, so
# the (rare) "run again until stable" loop can be skipped for them.
_STABLE_RE = re.compile(r"[0-9a-z\u3400-\u4dbf\u4e00-\u9fff /#&-]*")
_HYPHEN_RE = re.compile(rf"-(?!{_WORD})|(?<!{_WORD})-")
_CJK_SPACE_RE = re.compile(rf"(?<=[{_CJK}]) | (?=[{_CJK}])")
_IDEO_RE = re.compile(f"[{_IDEO}]")
_ASCII_DIGIT_RE = re.compile(r"[0-9]")

# Characters kept as they are although they are punctuation.
_KEEP_PUNCT = frozenset("-/#&")


def _build_translate_table() -> dict[int, str | None]:
    """Map punctuation, separators and control characters (BMP) for ``str.translate``."""
    table: dict[int, str | None] = {}
    for cp in range(0x10000):
        ch = chr(cp)
        if ch in _KEEP_PUNCT:
            continue
        cat = unicodedata.category(ch)
        if cat == "Pd":
            table[cp] = "-"
        elif cat[0] == "P" or cat[0] == "Z" or cat == "Cc":
            table[cp] = " "
        elif cat == "Cf":
            table[cp] = None  # zero-width space, BOM, soft hyphen, ...
    # ASCII symbols that are noise in addresses.
    for ch in "~+=|^`<>$%*@\\":
        table[ord(ch)] = " "
    table[ord("\u2212")] = "-"  # minus sign
    # Apostrophes join ("John's" -> "johns").
    for ch in "'\u2019\u2018\u02bc":
        table[ord(ch)] = None
    return table


_TRANSLATE = _build_translate_table()

# ---------------------------------------------------------------------------
# Chinese synonyms and numerals
# ---------------------------------------------------------------------------

# Longest alternatives first: the regex picks the first alternative that
# matches at the leftmost position.
_SYNONYMS: dict[str, str] = {
    "社区居民委员会": "社区",
    "社区居委会": "社区",
    "村村民委员会": "村",
    "村民委员会": "村",
    "居民委员会": "居委会",
    "村村委会": "村",
    "村委会": "村",
    "街道办事处": "街道",
    "村民小组": "组",
    "居民小组": "组",
    "村民组": "组",
    "居民组": "组",
    "小组": "组",
    "号楼": "幢",
    "栋": "幢",
}
_SYNONYM_RE = re.compile("|".join(map(re.escape, _SYNONYMS)))

_CN_DIGITS: dict[str, int] = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "壹": 1,
    "二": 2,
    "贰": 2,
    "两": 2,
    "三": 3,
    "叁": 3,
    "四": 4,
    "肆": 4,
    "五": 5,
    "伍": 5,
    "六": 6,
    "陆": 6,
    "七": 7,
    "柒": 7,
    "八": 8,
    "捌": 8,
    "九": 9,
    "玖": 9,
}
_CN_UNITS: dict[str, int] = {
    "十": 10,
    "拾": 10,
    "百": 100,
    "佰": 100,
    "千": 1000,
    "仟": 1000,
}
_CN_NUMERAL_CLASS = "".join(_CN_DIGITS) + "".join(_CN_UNITS)
# Suffixes that count things: a numeral right before one of them is a number.
_COUNTED = "组|号|幢|栋|单元|室|楼|层|弄"
# A maximal run of 第 / digits / Chinese numerals right before a counting
# suffix, provided it holds a 第 or a Chinese numeral (plain "3组" is skipped
# without a Python callback).
_NUMERAL_RE = re.compile(
    rf"(?=[0-9]*[第{_CN_NUMERAL_CLASS}])[第0-9{_CN_NUMERAL_CLASS}]+(?={_COUNTED})"
)
_NUMERAL_HINT_RE = re.compile(f"[第{_CN_NUMERAL_CLASS}]")
_NUMERAL_SPLIT_RE = re.compile(f"([{_CN_NUMERAL_CLASS}]+)")


@lru_cache(maxsize=4096)
def _cn_to_arabic(text: str) -> str | None:
    """Convert a Chinese numeral (up to 9999) to Arabic digits; None if malformed."""
    if not any(ch in _CN_UNITS for ch in text):
        # Digit-by-digit style: 一零五 -> 105, 二〇一 -> 201.
        return "".join(str(_CN_DIGITS[ch]) for ch in text)
    total = 0
    digit: int | None = None
    last_unit: int | None = None
    zero = False
    for ch in text:
        if ch in _CN_DIGITS:
            value = _CN_DIGITS[ch]
            if digit is not None:
                return None  # two digits in a row inside a unit numeral
            if value == 0:
                if last_unit is None:
                    return None
                zero = True
                continue
            digit = value
        else:
            unit = _CN_UNITS[ch]
            if last_unit is not None and unit >= last_unit:
                return None
            total += (1 if digit is None else digit) * unit
            digit = None
            last_unit = unit
            zero = False
    if digit is not None:
        if last_unit is not None and last_unit >= 100 and not zero:
            total += digit * last_unit // 10  # colloquial 三百五 = 350
        else:
            total += digit
    elif zero:
        return None  # dangling 零 (一百零)
    return str(total)


def _numeral_repl(match: re.Match[str]) -> str:
    run = match.group(0)
    body = run.replace("第", "")
    if not body:
        return run
    # Odd segments are Chinese numerals, even ones ASCII digits (or empty).
    parts = _NUMERAL_SPLIT_RE.split(body)
    for i in range(1, len(parts), 2):
        converted = _cn_to_arabic(parts[i])
        if converted is None:
            return run  # malformed: leave the text alone
        parts[i] = converted
    return "".join(parts)


# ---------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------


def _chinese_rules(s: str) -> str:
    """Steps 6 and 7: synonyms (to a fixed point), then numerals."""
    if _SYNONYM_RE.search(s) is not None:
        count = 1
        while count:
            s, count = _SYNONYM_RE.subn(_synonym_repl, s)
    if _NUMERAL_HINT_RE.search(s) is not None:
        s = _NUMERAL_RE.sub(_numeral_repl, s)
    return s


def _normalize_once(text: str) -> str:
    s = text
    if _PLAIN_RE.fullmatch(s) is None:
        s = unicodedata.normalize("NFKC", s).translate(_TRANSLATE).lower()
        if "-" in s:
            s = _HYPHEN_RE.sub(" ", s)
        s = " ".join(s.split())
        if " " in s:
            s = _CJK_SPACE_RE.sub("", s)
    return _chinese_rules(s)


def _synonym_repl(match: re.Match[str]) -> str:
    return _SYNONYMS[match.group(0)]


def normalize_address(text: str | None) -> str:
    """Normalise an address string for comparison and parsing.

    The steps, in order:

    1. Unicode NFKC (full-width digits, letters and punctuation and the
       ideographic space become their ASCII forms).
    2. Punctuation (``,`` ``，`` ``、`` ``.`` brackets, quotes, ...) becomes a
       space; control characters become a space; zero-width characters and
       apostrophes are removed; ``- / # &`` are kept.  Dash variants become
       ``-``.
    3. Latin letters are lower-cased.
    4. A hyphen survives only between two non-CJK letters or digits
       (``fürst-franz``, ``12-1``); any other hyphen is a separator.
    5. Whitespace is collapsed to single spaces and removed entirely next to
       a CJK character (``高家镇 湖仁村`` -> ``高家镇湖仁村``).
    6. Synonyms are unified: ``栋`` and ``号楼`` -> ``幢``; ``村民小组``,
       ``居民小组``, ``村民组``, ``小组`` -> ``组``; ``村委会`` /
       ``村民委员会`` -> ``村``; ``社区居委会`` -> ``社区``;
       ``街道办事处`` -> ``街道``.
    7. Chinese numerals right before a counting suffix (组 号 幢 单元 室 楼 层
       弄) become Arabic digits, and a leading ``第`` is dropped:
       ``第三组`` -> ``3组``, ``二十三号`` -> ``23号``, ``一百零五室`` ->
       ``105室``, ``两单元`` -> ``2单元``.  Malformed numerals are left
       alone.

    The function is idempotent and never raises on any ``str``.

    Parameters
    ----------
    text : str or None
        Raw address text.  ``None`` (or any non-string) is treated as empty.

    Returns
    -------
    str
        The normalised text; ``""`` for ``None``, empty or blank input.

    Examples
    --------
    >>> normalize_address("浙江省衢州市衢江区樟潭街道沈家路８号３栋２单元５０１室")
    '浙江省衢州市衢江区樟潭街道沈家路8号3幢2单元501室'
    >>> normalize_address("高家镇 湖仁村第三村民小组 十二号")
    '高家镇湖仁村3组12号'
    >>> normalize_address("  Landstrasse 12,  9490 VADUZ ")
    'landstrasse 12 9490 vaduz'
    >>> normalize_address("Fürst-Franz-Josef-Strasse 73")
    'fürst-franz-josef-strasse 73'
    """
    if not text or not isinstance(text, str):  # None, "", non-strings
        return ""
    if _PLAIN_RE.fullmatch(text) is not None:
        # Only ASCII digits/lower-case letters and CJK ideographs: the output
        # stays in that set, which is a fixed point of the pipeline.
        return _chinese_rules(text)
    s = _normalize_once(text)
    if _STABLE_RE.fullmatch(s) is None:
        # Rare inputs (combining marks, odd scripts) may need more passes.
        for _ in range(8):
            again = _normalize_once(s)
            if again == s:
                break
            s = again
    return s


def normalize_many(values: Sequence[str | None]) -> list[str | None]:
    """Normalise many addresses at once.

    Equivalent to ``[normalize_address(v) or None for v in values]`` but
    faster: when at least a fifth of the values are repeats, each distinct
    value is normalised once.

    Parameters
    ----------
    values : sequence of str or None
        Raw addresses.  Non-string items (``None``, ``NaN`` from pandas) are
        treated as missing.

    Returns
    -------
    list of str or None
        Normalised addresses, ``None`` where the input was missing, empty or
        normalised to nothing.

    Examples
    --------
    >>> normalize_many(["两单元", None, "  ", "XX县"])
    ['2单元', None, None, 'xx县']
    """
    plain = _PLAIN_RE.fullmatch
    rules = _chinese_rules
    normalize = normalize_address

    def one(value: str) -> str | None:
        return (rules(value) if plain(value) is not None else normalize(value)) or None

    return _map_strings(values, one)


def _map_strings(
    values: Sequence[Any], fn: Callable[[str], str | None]
) -> list[str | None]:
    """``[fn(v) if isinstance(v, str) else None for v in values]``, de-duplicated.

    The distinct values are counted first (a C-speed ``set``); when at least
    a fifth of the values are repeats, ``fn`` runs once per distinct value.
    Mostly-unique input skips the lookup table, which would only cost time.
    """
    try:
        distinct = set(values)
    except TypeError:  # unhashable junk: no de-duplication
        distinct = None
    if distinct is not None and 5 * len(distinct) <= 4 * len(values):
        table = {v: fn(v) if isinstance(v, str) else None for v in distinct}
        return [table[v] for v in values]
    return [fn(v) if isinstance(v, str) else None for v in values]
