"""Addresses: normalising, parsing into components, exact-match keys."""

from geo.address.normalize import (
    ParsedAddress,
    address_keys,
    normalize_address,
    normalize_many,
    parse_address,
)

__all__ = [
    "ParsedAddress",
    "address_keys",
    "normalize_address",
    "normalize_many",
    "parse_address",
]
