"""Benchmark: LVLM yes/no scoring. One forward pass vs generate(), and at real size the vision
tower once per frame.

Part 1, the world LVLM (`--model`, default `builtin:world-lvlm`): prompts/s of `HFLVLM.yes_no`
(one forward pass, logits[:, -1]) and of two generate()-based baselines on the same prompts and
batches: reading the first-token scores of a 16-token answer (what a pipeline that lets the model
explain itself pays), and of a greedy answer that stops at end-of-utterance. Each is printed as a
ratio against the single-forward run measured here. With the 0.9 M-parameter world model a
decode step costs about what the per-call overhead of a forward costs, so the batch-1 ratio is
large (~6x); at batch 16 on CPU the batched prefill costs as much as 16 cached decode steps (~2x).

Part 2, real size (`--real NAME`, default `smolvlm2-256m`; scripts/build_real_lvlms.py builds it
on first use): F 640x360 frames (`--frames`, default 4) through query-lvlm's `answer_video`,
every frame asked ZEAL's 6 questions (3 labels × start/end inside ZEAL's frame prompt):
- 6 questions per frame vs one question, with reuse (image features once per frame, the
  shared prefix's KV cache per question) and without (`reuse=False`, the model's own forward
  for every prompt, as before): target ≤ 1.6x with reuse;
- zsar's ZEAL scoring vs the reference ZEAL way on the same frames and questions: one
  `model.generate` call per question, the answer read from the generated text, generation
  stopped after 3 new tokens (what a real model's "Yes." costs; random weights never emit the
  end token, which would otherwise inflate the baseline): target ≥ 5x faster;
- prompts/s and peak RSS.
Part 3 (`--hour`): RSS while `answer_video` scores a one-hour video at 1 fps (3,600 640x360
frames × 6 questions) with the world LVLM, and while the real-size model scores `--hour-real`
frames of it (default 32): sampled after every chunk of frames, flat = not growing with the
frames done.

Times are wall seconds and this process's CPU seconds; on a machine shared with other jobs the
CPU seconds (core-seconds of work) are the stable figure, and ratios are printed for both.

    python bench/query_lvlm.py [--real smolvlm2-256m,...] [--frames F] [--hour] [--skip-world]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import real_size  # before torch: sets OMP_WAIT_POLICY; puts the repository on sys.path
import torch

from zsar_cli.backends import load_lvlm
from zsar_cli.stages.query_lvlm import QueryConfig, answer_video
from zsar_cli.synthetic import LABELS, random_object, render_frame


def prompts_and_frames(n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    images, prompts = [], []
    for i in range(n):
        obj = random_object(rng, 320, 240)
        images.append([render_frame(320, 240, [obj], rng=rng)])
        asked = obj.label if i % 2 else LABELS[i % len(LABELS)]
        prompts.append(f"Is there {asked} in this frame?")
    return images, prompts


def generate_scores(lvlm, images, prompts, new_tokens: int, forced: bool) -> np.ndarray:
    """p_yes from the first generated step's scores, via model.generate()."""
    yes = sorted(set(lvlm.yes_ids.values()))
    no = sorted(set(lvlm.no_ids.values()))
    out = []
    for part in lvlm._chunks(len(prompts)):
        inputs = lvlm.build_inputs(images[part], prompts[part])
        with torch.inference_mode():
            gen = lvlm.model.generate(
                **inputs.tensors,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens if forced else None,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=lvlm.tokenizer.pad_token_id,
            )
        probs = torch.softmax(gen.scores[0].double(), -1)
        y, n = probs[:, yes].sum(-1), probs[:, no].sum(-1)
        out.append((y / (y + n)).numpy())
    return np.concatenate(out)


def best_of(fn, repeats: int) -> tuple[float, object]:
    best = float("inf")
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def measure(lvlm, images, prompts, repeats: int) -> tuple[float, float, float]:
    """Seconds for single-forward scoring, generate() of 16 tokens, generate() to the end."""
    lvlm.yes_no(images[:2], prompts[:2])  # warm-up
    t_fwd, scores = best_of(lambda: lvlm.yes_no(images, prompts), repeats)
    t_gen16, p16 = best_of(lambda: generate_scores(lvlm, images, prompts, 16, True), repeats)
    t_gen, p_stop = best_of(lambda: generate_scores(lvlm, images, prompts, 16, False), repeats)
    # Same first-step numbers either way: the speed-up costs no accuracy.
    assert np.allclose(scores.p_yes, p16, atol=1e-4), "generate() first-step scores differ"
    assert np.allclose(scores.p_yes, p_stop, atol=1e-4)
    return t_fwd, t_gen16, t_gen


def world_section(args: argparse.Namespace) -> None:
    images, prompts = prompts_and_frames(args.prompts)
    n = len(prompts)
    print(f"{args.model} yes/no scoring, {n} prompts, {args.threads} threads")
    for batch in sorted({1, args.batch}):
        lvlm = load_lvlm(args.model, device=args.device, batch_size=batch)
        t_fwd, t_gen16, t_gen = measure(lvlm, images, prompts, args.repeats)
        print(f"batch {batch}")
        print(f"  single forward (logits[:, -1])   {n / t_fwd:8.1f} prompts/s   1.00x")
        print(
            f"  generate 16 tokens, read step 1  {n / t_gen16:8.1f} prompts/s   "
            f"single forward is {t_gen16 / t_fwd:.2f}x faster (target >= 3x)"
        )
        print(
            f"  generate until end-of-utterance  {n / t_gen:8.1f} prompts/s   "
            f"single forward is {t_gen / t_fwd:.2f}x faster"
        )


# ---------------------------------------------------------------------------------------------
# Real size


def zeal_reference(lvlm, images, queries, new_tokens: int = 3) -> np.ndarray:
    """ZEAL's own way: per frame and question one `generate` call, the answer read from the
    text (1.0 if it says yes)."""
    out = []
    for image in images:
        for query in queries:
            inputs = lvlm.build_inputs([[image]], [query.text])
            with torch.inference_mode():
                ids = lvlm.model.generate(
                    **inputs.tensors,
                    max_new_tokens=new_tokens,
                    do_sample=False,
                    pad_token_id=lvlm.tokenizer.pad_token_id,
                )
            text = lvlm.tokenizer.decode(
                ids[0, inputs.input_ids.shape[1] :], skip_special_tokens=True
            )
            out.append(1.0 if "yes" in text.lower() else 0.0)
    return np.asarray(out)


def real_section(name: str, args: argparse.Namespace) -> None:
    spec = real_size.real_model_spec(name)
    lvlm = load_lvlm(spec, device=args.device, dtype="float32", batch_size=args.real_batch)
    params = sum(p.numel() for p in lvlm.model.parameters()) / 1e6
    images = real_size.world_frames(args.frames)
    table = real_size.frames_table(images)
    queries = real_size.zeal_queries()
    config = QueryConfig(question="?", batch_size=args.real_batch).validated()
    frames, q = len(images), len(queries)
    print(
        f"\n{name} ({params:.1f} M parameters, random init), {frames} 640x360 frames, "
        f"{args.threads} threads"
    )

    def run(asked, reuse: bool):
        lvlm.reuse = reuse
        lvlm.features.clear()
        return answer_video(lvlm, table, "jpeg", asked, [], config)

    run(queries[:1], True)  # warm-up (allocator, lazy init)
    one, _ = real_size.timed(lambda: run(queries[:1], True))
    six, answers = real_size.timed(lambda: run(queries, True))
    vision_runs = lvlm.features.vision_runs
    one_plain, plain_one = real_size.timed(lambda: run(queries[:1], False))
    six_plain = None
    if not args.skip_plain:
        six_plain, plain = real_size.timed(lambda: run(queries, False))
        p_plain = np.asarray(plain.column("p_yes").to_pylist())
        p_reuse = np.asarray(answers.column("p_yes").to_pylist())
    else:  # the first question's answers are rows 0, 6, 12... of the six-question run
        p_plain = np.asarray(plain_one.column("p_yes").to_pylist())
        p_reuse = np.asarray(answers.column("p_yes").to_pylist())[:: len(queries)]
    worst = float(np.abs(p_reuse - p_plain).max())

    def line(label: str, t: real_size.Timing, prompts: int) -> str:
        return (
            f"  {label:<44} {t.wall:7.2f} s wall {t.cpu:7.2f} s CPU "
            f"{prompts / t.wall:6.2f} prompts/s"
        )

    print(line("1 question per frame, reuse", one, frames))
    print(line(f"{q} questions per frame, reuse", six, frames * q))
    print(
        f"    → {q} questions cost {six.ratio(one)} of one question (target ≤ 1.6x); "
        f"vision runs: {vision_runs} for {frames * q} prompts; |Δp_yes| vs plain ≤ {worst:.1e}"
    )
    print(line("1 question per frame, reuse=False", one_plain, frames))
    if six_plain is not None:
        print(line(f"{q} questions per frame, reuse=False", six_plain, frames * q))
        print(f"    → without reuse {q} questions cost {six_plain.ratio(one_plain)} of one")
    lvlm.reuse = True
    reference, _ = real_size.timed(lambda: zeal_reference(lvlm, images, queries))
    print(line("reference ZEAL: generate(3) per question", reference, frames * q))
    print(f"    → zsar's ZEAL scoring is {reference.ratio(six)} faster (target ≥ 5x)")
    print(f"  peak RSS of this process so far: {real_size.peak_rss_mib():.0f} MiB")
    lvlm.features.clear()


# ---------------------------------------------------------------------------------------------
# RSS over a one-hour video


class RecordingLVLM:
    """Forwards to an LVLM and samples this process's RSS after every call (one per chunk)."""

    def __init__(self, inner, frames_per_call: int) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.per_call = frames_per_call
        self.samples: list[tuple[int, float]] = []

    def yes_no(self, images, prompts):
        out = self.inner.yes_no(images, prompts)
        done = (self.samples[-1][0] if self.samples else 0) + len({id(i) for i in images})
        self.samples.append((done, real_size.rss_mib()))
        return out

    def choice_batch(self, *a):  # pragma: no cover - yes/no only here
        return self.inner.choice_batch(*a)

    def choice(self, *a):  # pragma: no cover
        return self.inner.choice(*a)

    def generate(self, *a):  # pragma: no cover
        return self.inner.generate(*a)


def hour_section(spec: str, frames: int, args: argparse.Namespace, batch: int) -> None:
    lvlm = load_lvlm(spec, device=args.device, dtype="float32", batch_size=batch)
    config = QueryConfig(question="?", batch_size=batch).validated()
    t0 = time.perf_counter()
    # 1 fps: a new world frame every second, as extract-frames --fps 1 would sample it.
    table = real_size.frames_table(real_size.world_frames(frames, seed=5), video_id="hour")
    made = time.perf_counter() - t0
    before = real_size.rss_mib()
    recording = RecordingLVLM(lvlm, config.batch_size)
    t, _ = real_size.timed(
        lambda: answer_video(recording, table, "jpeg", real_size.zeal_queries(), [], config)
    )
    samples = recording.samples
    marks = sorted(
        {0, len(samples) // 4, len(samples) // 2, 3 * len(samples) // 4, len(samples) - 1}
    )
    trace = ", ".join(f"{samples[i][0]} frames {samples[i][1]:.0f}" for i in marks)
    first_quarter = samples[len(samples) // 4][1]
    print(
        f"\n{spec}: {frames} frames (1 fps) × 6 questions in {t.wall:.0f} s wall, "
        f"{t.cpu:.0f} s CPU (table of JPEG frames made in {made:.0f} s)"
    )
    print(f"  RSS MiB before {before:.0f}; after: {trace}")
    print(f"  growth from the first quarter to the end: {samples[-1][1] - first_quarter:+.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:world-lvlm", help="LVLM spec (part 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16, help="batched run (a batch-1 run too)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-world", action="store_true", help="skip part 1")
    parser.add_argument("--real", default="smolvlm2-256m", help="real-size models (part 2)")
    parser.add_argument("--frames", type=int, default=4, help="frames of part 2")
    parser.add_argument("--real-batch", type=int, default=8, help="batch size of part 2")
    parser.add_argument(
        "--skip-plain", action="store_true", help="skip 6 questions with reuse=False (slow)"
    )
    parser.add_argument("--hour", action="store_true", help="part 3: RSS over one hour")
    parser.add_argument("--hour-real", type=int, default=32, help="frames for the real model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_world:
        world_section(args)
    for name in filter(None, args.real.split(",")):
        real_section(name, args)
    if args.hour:
        hour_section(args.model, 3600, args, batch=16)
        for name in filter(None, args.real.split(",")):
            hour_section(
                real_size.real_model_spec(name), args.hour_real, args, batch=args.real_batch
            )


if __name__ == "__main__":
    main()
