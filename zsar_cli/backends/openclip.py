"""open_clip image-text encoders behind the `Encoder` protocol (zsar_cli.backends.base).

Input: RGB frames (numpy) and texts. Output: L2-normalised float32 embeddings.

Spec forms (the part after `openclip:`):
- `ARCH/PRETRAINED_TAG` — an open_clip architecture and one of its pretrained tags, downloaded
  (or read from the Hugging Face cache) by open_clip, e.g. `ViT-B-32/laion2b_s34b_b79k`;
- `hf-hub:ORG/REPO` — an open_clip model repository on the Hugging Face Hub (or its cache);
- `local-dir:DIR` — a folder laid out like such a repository (open_clip_config.json + weights);
- `ARCH@PATH` — a local checkpoint: `.safetensors`, or a torch file read with
  `weights_only=True` (tensors only: arbitrary pickled objects are never loaded). The model
  config is `open_clip_config.json` beside the checkpoint when present (the Hub layout, with its
  own preprocessing), else open_clip's built-in config of ARCH.

Every model keeps its own open_clip preprocessing transform. A process loads a given model
once (`_LOADED`), however many stages ask for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsar_cli.backends.contract import check_clip_folder
from zsar_cli.backends.hub import offline_if_unreachable
from zsar_cli.errors import ConfigError, ModelError
from zsar_cli.quiet import quiet_libraries

DEFAULT_SPEC = "openclip:ViT-B-32/laion2b_s34b_b79k"
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")
CONFIG_NAME = "open_clip_config.json"
# Built-in models shipped under zsar_cli/models/<name>/: (architecture name, checkpoint file).
BUILTINS: dict[str, tuple[str, str]] = {
    "world-clip": ("zsar-world-rn", "world-clip.safetensors"),
}
# Shown first when an architecture is unknown (open_clip knows ~150; most users want one of these).
COMMON_ARCHITECTURES: tuple[str, ...] = (
    "RN50",
    "RN101",
    "ViT-B-32",
    "ViT-B-16",
    "ViT-L-14",
    "ViT-L-14-336",
    "ViT-H-14",
    "ViT-bigG-14",
    "convnext_base_w",
    "EVA02-B-16",
    "ViT-B-16-SigLIP",
    "ViT-SO400M-14-SigLIP",
)
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

_LOADED: dict[tuple[str, str, str], OpenClipEncoder] = {}


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """open_clip logs on the root logger, warning even about the weights we load ourselves right
    after (`load_weights=False`), and huggingface_hub logs every download retry; a failure is
    reported once, as our own one-line error, so both stay quiet while a model loads."""
    loggers = [logging.getLogger(), logging.getLogger("huggingface_hub")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.CRITICAL)
    try:
        # torch's weights_only unpickler warns about the pickle protocol of a file it may then
        # refuse anyway; the refusal is our one line (ZSAR_VERBOSE=1 shows library warnings).
        with quiet_libraries():
            yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def builtin_spec(name: str) -> str:
    """`world-clip` → `openclip:zsar-world-rn@<package>/models/world-clip/<weights file>`."""
    if name not in BUILTINS:
        raise ModelError(
            f"unknown built-in encoder {name!r}; known: "
            + ", ".join(f"builtin:{n}" for n in BUILTINS)
        )
    arch, filename = BUILTINS[name]
    path = MODELS_DIR / name / filename
    if not path.is_file():
        raise ModelError(
            f"builtin:{name}: {path} is missing; rebuild it with "
            "`python scripts/build_world_clip.py`"
        )
    check_clip_folder(path.parent, f"builtin:{name}", required=True)
    return f"openclip:{arch}@{path}"


def resolve_device(device: str) -> str:
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ConfigError(f"--device {device!r}: expected one of {', '.join(DEVICES)} or cuda:N")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    return device


def _known_architectures(limit: int = 12) -> str:
    import open_clip

    names = open_clip.list_models()
    common = [n for n in COMMON_ARCHITECTURES if n in names]
    shown = ", ".join(common or names[:limit])
    more = f", ... ({len(names)} in all; open_clip.list_models())" if len(names) > limit else ""
    return shown + more


def _offline_hint(what: str, exc: BaseException) -> ModelError:
    reason = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    if len(reason) > 160:
        reason = reason[:157] + "..."
    return ModelError(
        f"cannot download {what} (no network? {reason}); pass a local checkpoint, e.g. "
        "--model openclip:ViT-B-32@/path/model.safetensors, or set HF_HOME to a populated "
        "Hugging Face cache with HF_HUB_OFFLINE=1"
    )


def _read_local_config(path: Path) -> dict[str, Any] | None:
    config_path = path.parent / CONFIG_NAME
    if not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{config_path}: unreadable open_clip config ({exc})") from None
    if not isinstance(config, dict) or "model_cfg" not in config:
        raise ModelError(f"{config_path}: open_clip config lacks 'model_cfg'")
    return config


def _create_from_checkpoint(
    arch: str, path: Path, device: str, precision: str
) -> tuple[Any, Any, Any, str]:
    import open_clip

    if not path.exists():
        raise ModelError(f"checkpoint {path}: no such file")
    if path.is_dir():
        raise ModelError(f"checkpoint {path}: is a folder; give the weights file (or local-dir:)")
    local = _read_local_config(path)
    if local is not None:
        declared = local.get("zsar_arch")
        if declared and declared != arch:
            raise ModelError(
                f"checkpoint {path}: {CONFIG_NAME} beside it describes {declared!r}, not {arch!r}"
            )
        name = f"local-dir:{path.parent}"
    elif arch in open_clip.list_models():
        name = arch
    else:
        raise ModelError(
            f"unknown open_clip architecture {arch!r} (and no {CONFIG_NAME} beside {path}); "
            f"known: {_known_architectures()}"
        )
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, load_weights=False, device=device, precision=precision
        )
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as exc:  # a malformed config: open_clip raises many kinds
        raise ModelError(f"cannot build {arch} from {name}: {exc}") from None
    try:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"checkpoint {path}: not a loadable {arch} checkpoint (safetensors or a torch "
            f"state dict of tensors): {_load_failure(exc)}"
        ) from None
    return model, preprocess, tokenizer, str(path)


def _create_pretrained(arch: str, tag: str, device: str, precision: str) -> tuple[Any, ...]:
    import open_clip

    if arch not in open_clip.list_models():
        raise ModelError(
            f"unknown open_clip architecture {arch!r}; known: {_known_architectures()}"
        )
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag not in tags:
        raise ModelError(
            f"unknown pretrained tag {tag!r} for {arch}; known: {', '.join(tags) or 'none'} "
            f"(or a local checkpoint: openclip:{arch}@/path/model.safetensors)"
        )
    try:
        with offline_if_unreachable():
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=tag, device=device, precision=precision
            )
    except Exception as exc:
        raise _offline_hint(f"open_clip weights {arch}/{tag}", exc) from None
    return model, preprocess, open_clip.get_tokenizer(arch), tag


def _create_hub(name: str, device: str, precision: str) -> tuple[Any, ...]:
    import open_clip

    if name.startswith("local-dir:") and not Path(name.split(":", 1)[1]).is_dir():
        raise ModelError(f"{name}: no such folder")
    try:
        with offline_if_unreachable():
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, device=device, precision=precision
            )
            tokenizer = open_clip.get_tokenizer(name)
    except Exception as exc:
        if name.startswith("hf-hub:"):
            raise _offline_hint(name, exc) from None
        raise ModelError(f"{name}: cannot load ({_load_failure(exc)})") from None
    return model, preprocess, tokenizer, name


def _load_failure(exc: BaseException) -> str:
    """Why open_clip could not load weights, in a few words (its messages run to pages: every
    missing key, or torch's whole weights_only explanation)."""
    import pickle

    if isinstance(exc, pickle.UnpicklingError):
        return (
            "the weights file holds pickled objects other than tensors, which zsar never "
            "unpickles (weights_only); save the state dict as .safetensors"
        )
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= 200 else first[:197] + "..."


def parse_rest(rest: str) -> tuple[str, str | None, str | None, str | None]:
    """Split the part after `openclip:` into (kind, arch, tag, path)."""
    if rest.startswith(("hf-hub:", "local-dir:")):
        return "hub", None, None, rest
    if "@" in rest:
        arch, path = rest.split("@", 1)
        if not arch or not path:
            raise ModelError(f"openclip:{rest}: expected ARCH@PATH")
        return "checkpoint", arch, None, os.path.expanduser(path)
    if "/" in rest:
        arch, tag = rest.split("/", 1)
        return "pretrained", arch, tag, None
    raise ModelError(
        f"openclip:{rest}: give a pretrained tag or a checkpoint, e.g. "
        f"openclip:{rest or 'ViT-B-32'}/laion2b_s34b_b79k, openclip:{rest or 'ViT-B-32'}@"
        "/path/model.safetensors or openclip:hf-hub:ORG/REPO"
    )


class OpenClipEncoder:
    """An open_clip model with its transform and tokenizer (implements `PatchTokenEncoder`)."""

    def __init__(
        self,
        spec: str,
        model: Any,
        preprocess: Any,
        tokenizer: Any,
        pretrained: str,
        device: str,
        precision: str,
        batch_size: int,
    ) -> None:
        import open_clip
        from open_clip.transformer import VisionTransformer

        self.spec = spec
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.pretrained = pretrained
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.input_dtype = open_clip.get_input_dtype(precision)
        self.logit_scale = float(model.logit_scale.exp().item())
        visual = model.visual
        self.patch_grid: tuple[int, int] | None = None
        if isinstance(visual, VisionTransformer) and visual.proj is not None:
            self.patch_grid = (int(visual.grid_size[0]), int(visual.grid_size[1]))
        with torch.inference_mode():
            probe = self._forward_texts(["a"])
        self.dim = int(probe.shape[1])

    # -- facts for metadata
    def describe(self) -> dict[str, object]:
        from zsar_cli.backends import model_record

        # The resolved revision names the weights; a built-in model is `builtin:NAME` and the
        # hash of its files, not its install path.
        record = model_record(self.spec)
        return {
            **record,
            "model_spec": self.spec,
            "pretrained": record.get("model_sha256", self.pretrained),
            "preprocess": " | ".join(str(t).replace("\n", " ") for t in self.preprocess.transforms),
            "embedding_dim": self.dim,
            "logit_scale": self.logit_scale,
            "precision": self.precision,
        }

    # -- images
    def preprocess_images(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Each frame through the model's own open_clip transform, stacked on the CPU."""
        from PIL import Image

        return torch.stack([self.preprocess(Image.fromarray(np.asarray(im))) for im in images])

    def _chunks(self, n: int) -> Iterator[slice]:
        step = max(1, int(self.batch_size))
        for start in range(0, n, step):
            yield slice(start, min(n, start + step))

    def _to_device(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.to(self.device, dtype=self.input_dtype or torch.float32, non_blocking=True)

    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """(N, D) L2-normalised embeddings of already preprocessed pixels (N, 3, H, W)."""
        out = []
        with torch.inference_mode():
            for part in self._chunks(len(pixels)):
                feats = self.model.encode_image(self._to_device(pixels[part]), normalize=True)
                out.append(feats.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        out = [
            self.encode_pixels(self.preprocess_images(images[part]))
            for part in self._chunks(len(images))
        ]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def _require_patches(self) -> tuple[int, int]:
        if self.patch_grid is None:
            raise ModelError(f"{self.spec}: patch tokens need a ViT image tower")
        return self.patch_grid

    def encode_pixels_with_patches(self, pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        self._require_patches()
        visual = self.model.visual
        embs, toks = [], []
        previous = visual.output_tokens
        visual.output_tokens = True
        try:
            with torch.inference_mode():
                for part in self._chunks(len(pixels)):
                    pooled, tokens = visual(self._to_device(pixels[part]))
                    # Patch tokens share ln_post with the pooled token; the same projection maps
                    # them into the joint space, where they can be compared with text.
                    tokens = tokens @ visual.proj
                    embs.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu())
                    toks.append(torch.nn.functional.normalize(tokens, dim=-1).float().cpu())
        finally:
            visual.output_tokens = previous
        if not embs:
            rows, cols = self._require_patches()
            return np.zeros((0, self.dim), np.float32), np.zeros((0, rows * cols, self.dim))
        return torch.cat(embs).numpy(), torch.cat(toks).numpy()

    def encode_images_with_patches(
        self, images: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_pixels_with_patches(self.preprocess_images(images))

    def encode_patch_tokens(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.encode_images_with_patches(images)[1]

    # -- texts
    def _forward_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return self.model.encode_text(tokens, normalize=True).float()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for part in self._chunks(len(texts)):
                out.append(self._forward_texts(texts[part]).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def load_openclip(
    rest: str,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 32,
) -> OpenClipEncoder:
    """Load (once per process) the open_clip model named by `rest` (the spec after `openclip:`)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be >= 1")
    device = resolve_device(device)
    kind, arch, tag, path = parse_rest(rest)
    # A folder that records the prompt templates its model was trained on must still match them.
    if kind == "checkpoint" and path is not None:
        check_clip_folder(Path(path).parent, f"openclip:{rest}")
    elif rest.startswith("local-dir:"):
        check_clip_folder(Path(rest.partition(":")[2]).expanduser(), f"openclip:{rest}")
    key = (rest, device, precision)
    if key in _LOADED:
        encoder = _LOADED[key]
        encoder.batch_size = batch_size
        return encoder
    with _quiet_open_clip():
        if kind == "hub":
            assert path is not None
            model, preprocess, tokenizer, pretrained = _create_hub(path, device, precision)
        elif kind == "checkpoint":
            assert arch is not None and path is not None
            model, preprocess, tokenizer, pretrained = _create_from_checkpoint(
                arch, Path(path), device, precision
            )
        else:
            assert arch is not None and tag is not None
            model, preprocess, tokenizer, pretrained = _create_pretrained(
                arch, tag, device, precision
            )
    encoder = OpenClipEncoder(
        f"openclip:{rest}", model, preprocess, tokenizer, pretrained, device, precision, batch_size
    )
    _LOADED[key] = encoder
    return encoder
