"""Addresses: normalising, parsing into components, exact-match keys."""

from geo.address.keys import address_keys
from geo.address.normalize import normalize_address, normalize_many
from geo.address.parse import ParsedAddress, parse_address

__all__ = [
    "ParsedAddress",
    "address_keys",
    "normalize_address",
    "normalize_many",
    "parse_address",
]
