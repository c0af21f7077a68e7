"""The seeded sample county (Chinese admin hierarchy, addresses, apartment buildings)
and a seeded year of its matters (三事分流)."""

from geo.sample.county import COUNTY_CODE, SampleCounty, generate_county, write_county
from geo.sample.events import generate_events

__all__ = [
    "COUNTY_CODE",
    "SampleCounty",
    "generate_county",
    "generate_events",
    "write_county",
]
