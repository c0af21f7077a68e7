"""Exact-match keys of many addresses at once, with a fast path for canonical ones."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from geo.address.normalize import (
    _CN_NUMERAL_CLASS,
    _IDEO_RE,
    _PLAIN_RE,
    _chinese_rules,
    _map_strings,
    normalize_address,
)
from geo.address.parse import (
    _fields_key,
    _parse_cn_prefix,
    _parse_normalized,
)

__all__ = ["address_keys"]


# ---------------------------------------------------------------------------
# Fast key path for the common, already canonical Chinese addresses
# ---------------------------------------------------------------------------

_CANONICAL_TAIL = (
    "(?:[0-9]+组)?"
    "(?:[0-9]+[a-z]?(?:-[0-9]+[a-z]?)?号)?"
    "(?:[0-9a-z]+(?:-[0-9]+)?幢)?"
    "(?:[0-9a-z]+单元)?"
    "(?:[0-9]+[a-z]?室)?"
)
# A digit-free prefix, then a tail already in key form:
# (group组)(number号)(building幢)(unit单元)(room室).
_CANONICAL_SPLIT_RE = re.compile(f"([^0-9]*+){_CANONICAL_TAIL}")
_CANONICAL_TAIL_RE = re.compile(_CANONICAL_TAIL)
# Characters a raw tail may be made of (before folding), and those it
# starts with.  Folding maps full-width digits and letters to ASCII, upper
# case to lower case and 栋 to 幢 - exactly what normalisation does to them.
_ASCII_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FULLWIDTH_ALNUM = "".join(chr(ord(ch) + 0xFEE0) for ch in _ASCII_ALNUM)
_TAIL_CHARS = _ASCII_ALNUM + _FULLWIDTH_ALNUM + "-组号幢单元室栋"
_TAIL_START = frozenset(_ASCII_ALNUM + _FULLWIDTH_ALNUM)
_TAIL_FOLD = str.maketrans(
    {
        **{
            fw: ch.lower()
            for fw, ch in zip(_FULLWIDTH_ALNUM, _ASCII_ALNUM, strict=True)
        },
        **{ch: ch.lower() for ch in _ASCII_ALNUM if ch.isupper()},
        "栋": "幢",
    }
)
_IDEOGRAPHS_ONLY_RE = re.compile("[\u4e00-\u9fff]*")

# (anchor, village+group, road+estate, has_road, has_group)
_PrefixParts = tuple[str, str, str, bool, bool]


@lru_cache(maxsize=65536)
def _prefix_key_parts(prefix: str) -> _PrefixParts | None:
    """Key pieces of a normalised Chinese prefix (None: use the general path).

    The general path is needed when the prefix holds a building (``a幢``).
    """
    province, city, county, township, village, group, road, building, rest = (
        _parse_cn_prefix(prefix)
    )
    if building is not None:
        return None
    anchor = township if township is not None else (county or city or province)
    return (
        anchor or "",
        (village or "") + (group + "组" if group is not None else ""),
        (road or "") + (rest or ""),
        road is not None,
        group is not None,
    )


def _raw_prefix_parts(prefix: str) -> _PrefixParts | None:
    """:func:`_prefix_key_parts` for a raw (not normalised) prefix, if it is safe.

    Safe means: the prefix is made of CJK ideographs only, is already
    normalised on its own and does not end in 第 or a Chinese numeral (which
    would join the digits that follow).  Then ``prefix + canonical tail`` is
    already normalised as a whole.
    """
    if _IDEOGRAPHS_ONLY_RE.fullmatch(prefix) is None:
        return None
    if prefix and prefix[-1] in _NUMERAL_TAIL_CHARS:
        return None
    if _chinese_rules(prefix) != prefix:
        return None
    return _prefix_key_parts(prefix)


_NUMERAL_TAIL_CHARS = frozenset("第" + _CN_NUMERAL_CLASS)


def _compose_key(parts: _PrefixParts, tail: str) -> str | None:
    """The key of ``prefix + tail`` from the prefix parts and a canonical tail.

    Returns None when the combination needs the general path.
    """
    anchor, village_group, road_estate, has_road, has_group = parts
    if "组" not in tail:
        if has_road and "号" in tail:
            # road + number: the village is left out of the key, a group is not
            return None if has_group else anchor + road_estate + tail
        return anchor + village_group + road_estate + tail or None
    if not has_group and not road_estate:
        return anchor + village_group + tail
    return None


def _normalized_key(s: str) -> str | None:
    """``parse_address(s).key`` for an already normalised ``s``."""
    if not s:
        return None
    if "\u4e00" <= s[0] <= "\u9fff" or _IDEO_RE.search(s) is not None:
        m = _CANONICAL_SPLIT_RE.fullmatch(s)
        if m is not None:
            cut = m.end(1)
            parts = _prefix_key_parts(s[:cut])
            if parts is not None:
                key = _compose_key(parts, s[cut:])
                if key is not None:
                    return key
    return _fields_key(_parse_normalized(s))


def address_keys(values: Sequence[str | None]) -> list[str | None]:
    """Compute :attr:`ParsedAddress.key` for many addresses at once.

    Equivalent to ``[parse_address(v).key for v in values]`` (with non-string
    items mapped to ``None``) but much faster:

    * text that is already ``<ideographs><canonical tail>`` (e.g.
      ``...湖仁村3组12号``, ``...沈家路8号3幢2单元501室``, also with 栋,
      full-width digits or upper-case letters in the tail) skips the
      normalisation pass and gets its key from the cached parse of its
      digit-free prefix plus the tail as it is;
    * other text is normalised and parsed, with the Chinese administrative
      prefixes parsed through a cache;
    * when at least a fifth of the values are repeats, each distinct value
      is handled once;
    * no ``ParsedAddress`` objects are built.

    About 5-6 µs per address on one core for varied, mostly unique
    Chinese addresses, less with repeats.

    Parameters
    ----------
    values : sequence of str or None
        Raw addresses.  Non-string items (``None``, ``NaN``) are missing.

    Returns
    -------
    list of str or None
        One key per input; ``None`` for missing or blank input.

    Examples
    --------
    >>> address_keys(["高家镇湖仁村三组12号", "衢江区高家镇湖仁村3组12号", None, ""])
    ['高家镇湖仁村3组12号', '高家镇湖仁村3组12号', None, None]
    """
    prefixes: dict[str, _PrefixParts | None] = {}
    canonical_tail = _CANONICAL_TAIL_RE.fullmatch
    tail_chars = _TAIL_CHARS
    tail_start = _TAIL_START
    tail_fold = _TAIL_FOLD
    normalize = normalize_address
    plain = _PLAIN_RE.fullmatch
    rules = _chinese_rules
    key_of = _normalized_key

    def one(value: str) -> str | None:
        # Fast path for raw text that is already "<ideographs><canonical
        # tail>": no normalisation pass, the prefix is looked up in a dict.
        # Same logic as _compose_key, inlined.
        cut = len(value.rstrip(tail_chars))
        tail = value[cut:]
        if not tail or tail[0] in tail_start:
            prefix = value[:cut]
            try:
                parts = prefixes[prefix]
            except KeyError:
                parts = prefixes[prefix] = _raw_prefix_parts(prefix)
            if parts is not None and (
                canonical_tail(tail) is not None
                or canonical_tail(tail := tail.translate(tail_fold)) is not None
            ):
                anchor, village_group, road_estate, has_road, has_group = parts
                if "组" not in tail:
                    if has_road and "号" in tail:
                        if not has_group:
                            return anchor + road_estate + tail
                    else:
                        key = anchor + village_group + road_estate + tail
                        if key:
                            return key
                elif not has_group and not road_estate:
                    return anchor + village_group + tail
        s = rules(value) if plain(value) is not None else normalize(value)
        return key_of(s) if s else None

    return _map_strings(values, one)
