"""Tables as offices send them: text in UTF-8 or GB18030, and Excel workbooks.

:func:`decode_text` finds a text file's encoding (UTF-8 with or without a
byte-order mark, UTF-16 with one, else GB18030 - which contains GBK and
GB2312); :func:`read_workbook` reads one sheet of an ``.xlsx`` workbook as
text cells, like a CSV read with ``dtype=str``. Both raise
:class:`TableError` with a message for the user; :mod:`geo.io` adds the file
name. No database access.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Final

import pandas as pd

__all__ = [
    "ENCODINGS",
    "WORKBOOK_SUFFIXES",
    "TableError",
    "decode_text",
    "read_workbook",
]

#: Encodings :func:`decode_text` can answer, as it names them.
ENCODINGS: Final = ("UTF-8", "UTF-8 with BOM", "UTF-16", "GB18030")
#: File suffixes read by :func:`read_workbook`.
WORKBOOK_SUFFIXES: Final = frozenset({".xlsx", ".xlsm"})

_UTF8_BOM: Final = b"\xef\xbb\xbf"
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")


class TableError(ValueError):
    """A table that cannot be read; the message is meant for the user.

    ``params`` names the reader's parameters the message refers to.
    """

    def __init__(self, message: str, *, params: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.params = params


def _where(data: bytes, pos: int) -> str:
    line = data.count(b"\n", 0, pos) + 1
    return f"byte 0x{data[pos]:02x} on line {line}"


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode a text file's bytes; return ``(text, encoding name)``.

    In order: a UTF-8 byte-order mark means UTF-8 (the mark is dropped); a
    UTF-16 mark means UTF-16; bytes that are valid UTF-8 are UTF-8; anything
    else is decoded as GB18030 (a superset of GBK and GB2312, what Chinese
    Windows and Excel write as "ANSI"). Every decode is strict.

    Raises
    ------
    TableError
        The bytes are none of these (naming the first bad byte and its line).

    Examples
    --------
    >>> decode_text("高家镇".encode("gb18030"))
    ('高家镇', 'GB18030')
    >>> decode_text(b"\\xef\\xbb\\xbfid")
    ('id', 'UTF-8 with BOM')
    """
    if data.startswith(_UTF8_BOM):
        try:
            return data[len(_UTF8_BOM) :].decode("utf-8"), "UTF-8 with BOM"
        except UnicodeDecodeError as exc:
            raise TableError(
                "the file starts with a UTF-8 byte-order mark but is not UTF-8 "
                f"({_where(data, exc.start + len(_UTF8_BOM))}); save it as UTF-8"
            ) from exc
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16"), "UTF-16"
        except UnicodeDecodeError as exc:
            raise TableError(
                f"the file starts with a UTF-16 byte-order mark but is not UTF-16 "
                f"(at byte {exc.start}); save it as UTF-8"
            ) from exc
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("gb18030"), "GB18030"
        except UnicodeDecodeError as exc:
            raise TableError(
                "the file is neither UTF-8 nor GB18030/GBK: not UTF-8 at "
                f"{_where(data, utf8_error.start)}, not GB18030 at "
                f"{_where(data, exc.start)}; save it as UTF-8"
            ) from exc


def _cell_text(value: Any) -> str | None:
    """A cell as the text a CSV export would hold; None for an empty cell."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date().isoformat()
    if isinstance(value, dt.date | dt.time | dt.datetime):
        return value.isoformat()
    return str(value)


def read_workbook(
    path: str | Path, sheet: str | None = None
) -> tuple[pd.DataFrame, str]:
    """Read one sheet of an ``.xlsx`` workbook as text; return ``(frame, sheet name)``.

    The first row is the header; every other cell becomes text as in a CSV
    (whole numbers without ``.0``, dates as ISO dates, empty cells missing).
    Rows with no value at all are skipped, as blank lines in a CSV are, so
    rows are numbered the same way (1 = the first data row). Columns with
    neither a header nor a value are dropped; a value under an empty header
    gets the column's letter (``column F``). Formulas give their cached
    values.

    Parameters
    ----------
    path
        The workbook.
    sheet
        The sheet's name; the first sheet when None.

    Raises
    ------
    TableError
        No such sheet (listing the sheets), an empty sheet, not a workbook.
    """
    import openpyxl
    from openpyxl.utils import get_column_letter

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise TableError(f"not a readable .xlsx workbook: {exc}") from exc
    try:
        names = list(wb.sheetnames)
        if sheet is None:
            if not names:
                raise TableError("the workbook has no sheets")
            name = names[0]
        elif sheet in names:
            name = sheet
        else:
            raise TableError(
                f"sheet={sheet!r}: the workbook has no such sheet; its sheets are "
                + ", ".join(map(repr, names)),
                params=("sheet",),
            )
        rows: list[list[str | None]] = []
        for raw in wb[name].iter_rows(values_only=True):
            cells = [_cell_text(v) for v in raw]
            while cells and cells[-1] is None:
                cells.pop()
            rows.append(cells)
    finally:
        wb.close()
    while rows and not rows[0]:
        rows.pop(0)  # leading empty rows before the header
    if not rows:
        raise TableError(f"sheet {name!r} is empty")
    header, body = rows[0], [r for r in rows[1:] if r]
    width = max([len(header), *(len(r) for r in body)])
    columns: list[str] = []
    keep: list[int] = []
    for j in range(width):
        cell = header[j] if j < len(header) else None
        title = cell.strip() if cell else None
        has_values = any(j < len(r) and r[j] is not None for r in body)
        if title is None and not has_values:
            continue
        columns.append(title or f"column {get_column_letter(j + 1)}")
        keep.append(j)
    data = [[r[j] if j < len(r) else None for j in keep] for r in body]
    frame = pd.DataFrame(data, columns=columns, dtype=object)
    return frame, name
