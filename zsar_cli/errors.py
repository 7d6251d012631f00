"""Domain errors. The CLI turns any ZsarError into one red line on stderr and exit code 1.

Messages are written for the user: they name the file or option at fault and say what to do.
"""

from __future__ import annotations


class ZsarError(Exception):
    """A user-fixable problem (bad input, missing model, wrong artifact)."""


class InputError(ZsarError):
    """A missing, unreadable or malformed input path or file."""


class OutputError(ZsarError):
    """An output that cannot be written where asked (permissions, a read-only file system, a
    file where its folder should be)."""


class VideoError(ZsarError):
    """A video that cannot be probed or decoded, or is too short for the sampling asked."""


class ArtifactError(ZsarError):
    """An artifact of the wrong kind, with missing columns, or from a newer schema."""


class ModelError(ZsarError):
    """A model spec that is unknown, missing or cannot be loaded."""


class ConfigError(ZsarError):
    """Options that contradict each other or are out of range."""


class CacheMismatchError(ZsarError):
    """An existing output was produced with other settings; refused unless --force."""
