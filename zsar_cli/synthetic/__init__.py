"""The synthetic world (../shared/SYNTHWORLD.md): frames and videos with exact ground truth.

Output: RGB frames (numpy uint8, H×W×3) rendered here, and — through `generate_world` (used by
`zsar synth`, the tests, the benchmarks and the model-building script) — a folder of videos with
their ground truth:

    OUTDIR/labels.txt, descriptions.json, world.json (the manifest: every video, instance, object)
    OUTDIR/trimmed/*.mp4 + list.csv
    OUTDIR/untrimmed/*.mp4 + list.csv + activitynet.json + thumos/<label>_test.txt
    OUTDIR/anomaly/*.mp4 + list.csv + temporal_annotation.txt (UCF-Crime lines)

No artifact (Parquet) is written here. Everything is driven by numpy Generators seeded from
`SynthConfig.seed`, so a seed fixes the world: same seed → identical ground-truth files and
identical frames.

Ground truth is exact by construction: an instance covers frames [start_frame, end_frame) and is
drawn in exactly those frames, so in seconds frame i (time i/fps) shows it iff start <= i/fps < end.
Boundaries lie on frames whose times are whole multiples of 1/gcd(fps, 100) s, so they print as
short exact decimals and comparisons against i/fps cannot flip by rounding.

The modules, in dependency order: `vocabulary` (labels, label texts, objects), `render` (masks,
phase styles, frames), `codecs` (encoders, containers; encoding runs in `zsar_cli.video`),
`config` (`SynthConfig`), `world` (instances, videos, the manifest), `plan` (the pure plan of a
world), `ground_truth` (the folder's annotation files), `generate` (videos and folder) and
`layouts` (the world moved into a real dataset's folders and annotation files, `--layout`).
Importing the package loads none of numpy, ffmpeg or torch: the CLI reads SynthConfig's defaults
at start-up, and `zsar --help` must stay fast.
"""

from zsar_cli.synthetic.codecs import (
    CODEC_ALIASES,
    CODECS,
    CONTAINERS,
    resolve_codec,
    resolve_container,
    write_video,
)
from zsar_cli.synthetic.config import FPS_RANGE, SIZE_MAX, SIZE_MIN, SynthConfig
from zsar_cli.synthetic.generate import generate_background_video, generate_world
from zsar_cli.synthetic.ground_truth import (
    NORMAL_CLASS,
    activitynet_json,
    ucf_crime_line,
    write_ground_truth,
)
from zsar_cli.synthetic.layouts import (
    LAYOUTS,
    DatasetLayout,
    LayoutSpec,
    camel_case,
    generate_layout,
    layout_config,
    layout_spec,
    plan_layout,
)
from zsar_cli.synthetic.plan import plan_world
from zsar_cli.synthetic.render import (
    OUTLINE_INNER,
    RIM_COLOR,
    RIM_SCALE,
    STYLES,
    FrameRenderer,
    object_mask,
    object_patch_mask,
    render_frame,
    style_masks,
)
from zsar_cli.synthetic.vocabulary import (
    BACKGROUND_PHRASE,
    COLORS,
    LABELS,
    SHAPES,
    WorldObject,
    label_phrase,
    label_token,
    parse_label,
    random_object,
    world_descriptions,
)
from zsar_cli.synthetic.world import (
    KINDS,
    MANIFEST_NAME,
    Instance,
    WorldManifest,
    WorldVideo,
    load_world,
)

__all__ = [
    "BACKGROUND_PHRASE",
    "CODECS",
    "CODEC_ALIASES",
    "COLORS",
    "CONTAINERS",
    "FPS_RANGE",
    "KINDS",
    "LABELS",
    "LAYOUTS",
    "MANIFEST_NAME",
    "NORMAL_CLASS",
    "OUTLINE_INNER",
    "RIM_COLOR",
    "RIM_SCALE",
    "SHAPES",
    "SIZE_MAX",
    "SIZE_MIN",
    "STYLES",
    "DatasetLayout",
    "FrameRenderer",
    "Instance",
    "LayoutSpec",
    "SynthConfig",
    "WorldManifest",
    "WorldObject",
    "WorldVideo",
    "activitynet_json",
    "camel_case",
    "generate_background_video",
    "generate_layout",
    "generate_world",
    "label_phrase",
    "label_token",
    "layout_config",
    "layout_spec",
    "load_world",
    "object_mask",
    "object_patch_mask",
    "parse_label",
    "plan_layout",
    "plan_world",
    "random_object",
    "render_frame",
    "resolve_codec",
    "resolve_container",
    "style_masks",
    "ucf_crime_line",
    "world_descriptions",
    "write_ground_truth",
    "write_video",
]
