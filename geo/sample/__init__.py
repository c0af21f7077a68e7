"""The seeded sample county and province (Chinese admin hierarchy, addresses,
apartment buildings) and a seeded year of a county's matters (三事分流)."""

from geo.sample.county import COUNTY_CODE, SampleCounty, generate_county, write_county
from geo.sample.events import generate_events
from geo.sample.province import (
    PROVINCE_CODE,
    CountySpec,
    SampleProvince,
    generate_province,
)

__all__ = [
    "COUNTY_CODE",
    "PROVINCE_CODE",
    "CountySpec",
    "SampleCounty",
    "SampleProvince",
    "generate_county",
    "generate_events",
    "generate_province",
    "write_county",
]
