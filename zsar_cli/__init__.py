"""zsar: zero-shot action recognition for video, as composable Unix-style stages.

Every stage is a plain library function as well as a CLI command; the package root stays light so
`zsar --help` starts fast (torch, open_clip and transformers are imported only by the backends).
"""

__version__ = "0.1.0"
