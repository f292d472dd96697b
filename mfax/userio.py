"""Former home of the YAML readers, now in `mfax.io` (kept so that ``from mfax import userio``
keeps working)."""

from mfax.io import SafeLoader, loads, parse_value, read_yaml

__all__ = ["SafeLoader", "loads", "parse_value", "read_yaml"]
