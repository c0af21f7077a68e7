"""The seeded sample county (Chinese admin hierarchy, addresses, apartment buildings)."""

from geo.sample.county import COUNTY_CODE, SampleCounty, generate_county, write_county

__all__ = ["COUNTY_CODE", "SampleCounty", "generate_county", "write_county"]
