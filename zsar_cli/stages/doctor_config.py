"""Settings of `zsar doctor`, free of heavy imports (the CLI reads its defaults cheaply)."""

from __future__ import annotations

from dataclasses import dataclass

from zsar_cli import options as o
from zsar_cli.options import ConfigBase, opt
from zsar_cli.stages.query_lvlm_config import DEFAULT_MODEL


@dataclass(frozen=True)
class DoctorConfig(ConfigBase):
    """Which model to check, loaded as a run would load it."""

    model: str = o.model(DEFAULT_MODEL, o.LVLM_MODEL_HELP)
    margin: float = opt(
        0.2, "Known-answer check: mean p_yes with a shape must exceed empty frames' by this.", min=0
    )
    video_input: str = o.video_input("the check's clips")
    max_pixels: int = o.max_pixels()
    device: str = o.device()
    dtype: str = o.lvlm_dtype()
    trust_remote_code: bool = o.trust_remote_code()
