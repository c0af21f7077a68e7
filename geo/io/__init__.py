"""Reading and validating input files, and the file-mode plan format."""

from geo.errors import InputError, Problem
from geo.io.planfiles import GRID_FILE_COLUMNS, read_plan_files, write_plan_files
from geo.io.tables import KINDS, SCHEMAS, Prepared, Schema, prepare, read_table

__all__ = [
    "GRID_FILE_COLUMNS",
    "KINDS",
    "SCHEMAS",
    "InputError",
    "Prepared",
    "Problem",
    "Schema",
    "prepare",
    "read_plan_files",
    "read_table",
    "write_plan_files",
]
