"""Stages: one module per pipeline step (frozen Config dataclass, pure functions, run())."""
