"""zsar: zero-shot action recognition for video, as composable Unix-style stages.

Every stage is a plain library function as well as a CLI command; the package root stays light so
`zsar --help` starts fast (torch, open_clip and transformers are imported only by the backends).
"""

__version__ = "0.1.0"

# The stage functions (zsar_cli.api), imported on first use so `import zsar_cli` stays light.
_API = (
    "extract_frames",
    "encode",
    "classify",
    "adapt",
    "query_lvlm",
    "select_tokens",
    "localize",
    "score",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    if name in _API:
        from zsar_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'zsar_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
