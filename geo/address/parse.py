"""Parsing normalised addresses into components (Chinese and Western), and their key."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from geo.address.normalize import (
    _ASCII_DIGIT_RE,
    _IDEO_RE,
    normalize_address,
)

__all__ = [
    "ParsedAddress",
    "parse_address",
]


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

_ROAD_SUFFIX = "大道|路|街|巷|弄"
# Administrative names may not contain these suffix characters (this keeps
# the lazy matches from swallowing the next level).
_ADMIN_NAME = "[^省市区县旗镇乡村路街巷弄组]"
_NOT_ROAD = f"(?!{_ROAD_SUFFIX})"

_CN_PREFIX_RE = re.compile(
    "(?P<province>(?:(?:北京|天津|上海|重庆)市"
    rf"|{_ADMIN_NAME}{{2,8}}?(?:省|自治区|特别行政区)){_NOT_ROAD})?"
    rf"(?P<city>{_ADMIN_NAME}{{1,12}}?(?:市|自治州|地区|盟){_NOT_ROAD})?"
    rf"(?P<county>{_ADMIN_NAME}{{1,9}}?(?<!社|小|园|景|校)(?:区|县|旗|市){_NOT_ROAD})?"
    rf"(?P<township>[^省市区县旗镇乡街巷弄组]{{1,9}}?(?:街道|镇|乡){_NOT_ROAD})?"
    rf"(?P<village>{_ADMIN_NAME}{{1,9}}?(?:村|社区|居委会){_NOT_ROAD})?"
    rf"(?:(?P<group>{_ADMIN_NAME}{{0,9}}?)组)?"
    "(?P<rest>.*?)"
    "(?:(?P<building>[a-z]{1,3})幢)?",
    re.DOTALL,
)
_CN_ROAD_RE = re.compile(rf"(?P<road>.+?(?:{_ROAD_SUFFIX}))(?P<rest>.*)", re.DOTALL)
_CN_TAIL_RE = re.compile(
    "(?:(?P<group>[0-9]+)组)?"
    "(?P<road>[^0-9]+?(?:大道|路|街|巷))?"
    "(?:(?P<lane>[0-9]+)弄)?"
    "(?:(?P<number>[0-9]+[a-z]?(?:-[0-9]+[a-z]?)?)号)?"
    # 3-2-501 shorthand for 3幢2单元501室
    "(?:(?P<b3>[0-9a-z]+)-(?P<u3>[0-9]+)-(?P<r3>[0-9]+[a-z]?)$)?"
    "(?:(?P<building>[0-9a-z]+(?:-[0-9]+)?)幢)?"
    "(?:(?P<unit>[0-9a-z]+)单元)?"
    "(?:(?P<room>[0-9]+[a-z]?)室|(?P<bare>[0-9]+[a-z]?)$)?"
    "(?P<rest>.*)",
    re.DOTALL,
)

# (province, city, county, township, village, group, road, building, rest)
_Prefix = tuple[
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
]
# (group, road, lane, number, building, unit, room, rest)
_Tail = tuple[
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
]


#: What may follow a "road" for the two to be one village name (横路 + 村).
_VILLAGE_ENDINGS = frozenset(("村", "社区", "居委会"))


@lru_cache(maxsize=65536)
def _parse_cn_prefix(prefix: str) -> _Prefix:
    m = _CN_PREFIX_RE.fullmatch(prefix)
    if m is None:  # cannot happen: every group is optional, `rest` takes all
        return (None, None, None, None, None, None, None, None, prefix)
    g = m.groupdict()
    village: str | None = g["village"]
    road: str | None = None
    rest: str | None = g["rest"] or None
    if rest is not None:
        rm = _CN_ROAD_RE.fullmatch(rest)
        if rm is not None:
            road = rm.group("road")
            rest = rm.group("rest") or None
            if village is None and rest in _VILLAGE_ENDINGS:
                # 横路村, 大街社区: a village whose name holds a road character
                village, road, rest = road + rest, None, None
    return (
        g["province"],
        g["city"],
        g["county"],
        g["township"],
        village,
        g["group"] or None,
        road,
        g["building"],
        rest,
    )


@lru_cache(maxsize=65536)
def _parse_cn_tail(tail: str) -> _Tail:
    if not tail:
        return (None, None, None, None, None, None, None, None)
    m = _CN_TAIL_RE.fullmatch(tail)
    if m is None:  # cannot happen: every group is optional, `rest` takes all
        return (None, None, None, None, None, None, None, tail)
    g = m.groupdict()
    number, building, unit, room = g["number"], g["building"], g["unit"], g["room"]
    bare = g["bare"]
    if g["b3"] is not None:
        building, unit, room = g["b3"], g["u3"], g["r3"]
    if bare is not None:
        if number is None and building is None and unit is None:
            number = bare  # 沈家路8 -> number 8
        else:
            room = bare  # 8号3幢2单元501 -> room 501
    return (
        g["group"],
        g["road"],
        g["lane"],
        number,
        building,
        unit,
        room,
        g["rest"] or None,
    )


# Field order shared by ParsedAddress and the internal tuples.
_FIELDS = (
    "province",
    "city",
    "county",
    "township",
    "village",
    "group",
    "road",
    "estate",
    "number",
    "building",
    "unit",
    "room",
    "street",
    "housenumber",
    "postcode",
    "locality",
    "extra",
)
_Fields = tuple[str | None, ...]
_EMPTY: _Fields = (None,) * len(_FIELDS)


def _parse_cn(s: str) -> _Fields:
    m = _ASCII_DIGIT_RE.search(s)
    cut = m.start() if m is not None else len(s)
    province, city, county, township, village, group, road, pbuilding, prest = (
        _parse_cn_prefix(s[:cut])
    )
    tgroup, troad, lane, number, building, unit, room, trest = _parse_cn_tail(s[cut:])
    extra = trest
    if troad is not None:
        if road is None and prest is None:
            road = troad
        else:
            extra = troad + (extra or "")
    if lane is not None:
        road = (road or "") + lane + "弄"
    return (
        province,
        city,
        county,
        township,
        village,
        group or tgroup,
        road,
        prest,
        number,
        building or pbuilding,
        unit,
        room,
        None,
        None,
        None,
        None,
        extra,
    )


_POSTCODE = r"(?:[a-z]{1,2}-)?(?P<postcode>[0-9]{4,5})"
_WEST_RE = re.compile(
    r"(?P<street>[^0-9].*?) "
    r"(?P<housenumber>[0-9]+[a-z]?(?:[-/][0-9]+[a-z]?)?)"
    rf"(?: {_POSTCODE})?"
    r"(?: (?P<locality>[^0-9].*))?"
)
_WEST_NUMBER_FIRST_RE = re.compile(
    r"(?P<housenumber>[0-9]+[a-z]?) (?P<street>[^0-9]+?)(?: (?P<postcode>[0-9]{4,5}))?"
)
_WEST_PLACE_RE = re.compile(rf"{_POSTCODE} (?P<locality>[^0-9].*)")


def _parse_western(s: str) -> _Fields:
    street = housenumber = postcode = locality = None
    m = _WEST_RE.fullmatch(s)
    if m is None and (p := _WEST_PLACE_RE.fullmatch(s)) is not None:
        # "9490 vaduz": a place only (postcodes win over number-first streets)
        postcode, locality = p.group("postcode"), p.group("locality")
    elif m is not None or (m := _WEST_NUMBER_FIRST_RE.fullmatch(s)) is not None:
        g = m.groupdict()
        street, housenumber = g["street"], g["housenumber"]
        postcode, locality = g.get("postcode"), g.get("locality")
    else:
        street = s
    return (*_EMPTY[:12], street, housenumber, postcode, locality, None)


def _parse_normalized(s: str) -> _Fields:
    if not s:
        return _EMPTY
    if _IDEO_RE.search(s) is not None:
        return _parse_cn(s)
    return _parse_western(s)


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------

_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_STREET_ABBREV: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"str(?=$|[ -])"), "strasse"),
    (re.compile(r"(?:(?<=[ -])|^)st$"), "street"),
    (re.compile(r"(?:(?<=[ -])|^)rd$"), "road"),
    (re.compile(r"(?:(?<=[ -])|^)ave?$"), "avenue"),
)
_SEPARATORS_RE = re.compile(r"[ -]+")


@lru_cache(maxsize=16384)
def _fold(text: str) -> str:
    """German-style umlaut folding, then strip any other diacritics."""
    s = unicodedata.normalize("NFD", text.translate(_UMLAUTS))
    return "".join(ch for ch in s if not unicodedata.combining(ch))


@lru_cache(maxsize=16384)
def _street_key(street: str) -> str:
    s = _fold(street)
    for pattern, replacement in _STREET_ABBREV:
        s = pattern.sub(replacement, s)
    return _SEPARATORS_RE.sub("", s)


def _fields_key(f: _Fields) -> str | None:
    (
        province,
        city,
        county,
        township,
        village,
        group,
        road,
        estate,
        number,
        building,
        unit,
        room,
        street,
        housenumber,
        postcode,
        locality,
        extra,
    ) = f
    western = (street, housenumber, postcode, locality)
    if western != (None, None, None, None):
        place = postcode if postcode is not None else locality
        return "|".join(
            (
                _street_key(street) if street else "",
                (housenumber or "").replace(" ", ""),
                _SEPARATORS_RE.sub("", _fold(place)) if place else "",
            )
        )
    parts: list[str] = []
    if township is not None:
        parts.append(township)
    else:
        anchor = county or city or province
        if anchor is not None:
            parts.append(anchor)
    if (road is None or number is None) and village is not None:
        parts.append(village)
    if group is not None:
        # Always kept: groups of one village reuse house numbers (5组26号, 4组26号).
        parts.append(group + "组")
    if road is not None:
        parts.append(road)
    if estate is not None:
        parts.append(estate)
    if number is not None:
        parts.append(number + "号")
    if building is not None:
        parts.append(building + "幢")
    if unit is not None:
        parts.append(unit + "单元")
    if room is not None:
        parts.append(room + "室")
    if extra is not None:
        parts.append(extra)
    return "".join(parts) or None


# ---------------------------------------------------------------------------
# Public parsing API
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    """Components of one address; every field is an optional normalised string.

    Chinese addresses fill ``province`` .. ``room`` and ``extra``, Western
    addresses fill ``street`` .. ``locality``.

    Attributes
    ----------
    province : str or None
        省 / 自治区 / municipality (``浙江省``, ``上海市``).
    city : str or None
        市 / 自治州 / 地区 / 盟 (``衢州市``).  A lone county-level city
        (``江山市贺村镇...``) lands here, since it cannot be told apart.
    county : str or None
        区 / 县 / 旗 / a second 市 (``衢江区``).
    township : str or None
        镇 / 乡 / 街道 (``高家镇``, ``樟潭街道``).
    village : str or None
        村 / 社区 / 居委会 (``湖仁村``, ``沈家社区``).
    group : str or None
        村民小组 as digits (``"3"``); a named group keeps its name.
    road : str or None
        路 / 街 / 巷 / 大道 / 弄, with a lane number appended
        (``长乐路123弄``).
    estate : str or None
        Unassigned text between the administrative part (or road) and the
        numbers - usually a residential estate or building name
        (``阳光小区``, ``xx大厦``).
    number : str or None
        号 number (``"12"``, ``"12a"``, ``"12-1"``).
    building : str or None
        幢 (栋, 号楼) number.
    unit : str or None
        单元 number.
    room : str or None
        室 number (also bare trailing digits after a 号/幢/单元).
    street, housenumber, postcode, locality : str or None
        Western components; the postcode is digits only (``FL-9490`` ->
        ``9490``).
    extra : str or None
        Whatever part of a Chinese address could not be assigned after the
        numbers (floors ``3楼``, ``附1号``, a second road, ...), in order.

    Examples
    --------
    >>> p = parse_address("高家镇湖仁村三组十二号")
    >>> p.township, p.village, p.group, p.number
    ('高家镇', '湖仁村', '3', '12')
    >>> p.key
    '高家镇湖仁村3组12号'
    """

    province: str | None = None
    city: str | None = None
    county: str | None = None
    township: str | None = None
    village: str | None = None
    group: str | None = None
    road: str | None = None
    estate: str | None = None
    number: str | None = None
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    street: str | None = None
    housenumber: str | None = None
    postcode: str | None = None
    locality: str | None = None
    extra: str | None = None

    @property
    def key(self) -> str | None:
        """Canonical string for exact matching of addresses.

        **Chinese addresses** - the canonical tokens are concatenated, each
        with its suffix, in this fixed order::

            anchor village group组 road estate number号 building幢 unit单元 room室 extra

        * ``anchor`` is the township when there is one; province, city and
          county are then ignored.  Without a township the most specific of
          county / city / province is kept, so that ``衢江区沈家路8号`` and
          ``龙游县沈家路8号`` stay different.
        * ``village`` is left out when both ``road`` and ``number`` are
          present (the road number already identifies the plot;
          ``衢江区樟潭街道沈家社区沈家路8号...`` matches
          ``樟潭街道沈家路8号...``).  Every numbered component - ``group``
          (组), ``number`` (号), ``building`` (幢), ``unit`` (单元),
          ``room`` (室) - is always kept: the groups of one village reuse
          house numbers (``横路村5组26号`` and ``横路村4组26号`` are two
          households).
        * Missing components are simply absent.

        **Western addresses** - ``street|housenumber|place`` where ``street``
        is folded (``ä->ae ö->oe ü->ue ß->ss``, other diacritics dropped),
        has ``str``/``str.`` expanded to ``strasse`` (and a final ``st``,
        ``rd``, ``ave`` to ``street``, ``road``, ``avenue``) and has all
        spaces and hyphens removed; ``housenumber`` is lower-case
        (``12a``); ``place`` is the postcode digits if known, else the
        folded locality, else empty.

        Returns
        -------
        str or None
            The key, or ``None`` when nothing was parsed (empty input).

        Examples
        --------
        >>> parse_address("浙江省衢州市衢江区高家镇湖仁村3组12号").key
        '高家镇湖仁村3组12号'
        >>> parse_address("Landstr. 12, FL-9490 Vaduz").key
        'landstrasse|12|9490'
        >>> parse_address("Äulestrasse 20 9490 Vaduz").key
        'aeulestrasse|20|9490'
        >>> parse_address("   ").key is None
        True
        """
        return _fields_key(
            (
                self.province,
                self.city,
                self.county,
                self.township,
                self.village,
                self.group,
                self.road,
                self.estate,
                self.number,
                self.building,
                self.unit,
                self.room,
                self.street,
                self.housenumber,
                self.postcode,
                self.locality,
                self.extra,
            )
        )


def parse_address(text: str | None) -> ParsedAddress:
    """Split an address into its components.

    The text is normalised first (:func:`normalize_address`), so all
    returned strings are normalised too (digits are ASCII, Latin letters
    lower-case, synonyms unified).  Text containing Chinese ideographs is
    parsed as a Chinese address (province ... room); anything else as a
    Western one (``street housenumber[,] [postcode] [locality]``, or
    ``housenumber street [postcode]``).  Parsing never raises: parts that
    fit no pattern go to ``extra`` (Chinese) or ``street`` (Western).

    Parameters
    ----------
    text : str or None
        Raw address text.

    Returns
    -------
    ParsedAddress
        All fields ``None`` for missing or blank input.

    Examples
    --------
    >>> p = parse_address("樟潭街道沈家路8号3栋2单元501室")
    >>> p.township, p.road, p.number, p.building, p.unit, p.room
    ('樟潭街道', '沈家路', '8', '3', '2', '501')
    >>> w = parse_address("Im Gapetsch 5a, 9494 Schaan")
    >>> w.street, w.housenumber, w.postcode, w.locality
    ('im gapetsch', '5a', '9494', 'schaan')
    """
    return ParsedAddress(*_parse_normalized(normalize_address(text)))
