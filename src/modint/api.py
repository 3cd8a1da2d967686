"""modint's public API: load a model and a benchmark, diagnose, fine-tune, attack.

Each function here is a documented entry point over the library part that does the work; the
command line (``modint ...``) calls the same functions.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Sequence

from modint.attacks import PGDConfig
from modint.attacks import vlm as _attacks
from modint.attacks.vlm import AttackOutcome
from modint.data import registry
from modint.data.sample import Sample, load_image
from modint.diagnose import engine
from modint.diagnose.engine import DiagnoseConfig
from modint.mitigate import train as _training
from modint.mitigate.train import TrainConfig
from modint.models import loading
from modint.models.adapter import VLMAdapter
from modint.report.html import write_report_safely


def load_adapter(model: str = "demo", device: str = "cpu", dtype: str | None = "auto", device_map: str | None = None,
                 trust_remote_code: bool = False, seed: int = 0) -> VLMAdapter:
    """Load a vision-language model behind modint's one adapter interface.

    Args:
        model: ``"demo"`` (the bundled demo model), ``"tiny-random-FAMILY"`` (a tiny random model
            built in memory, e.g. ``tiny-random-llava``), a local directory in the Hugging Face
            layout, or a hub id such as ``llava-hf/llava-1.5-7b-hf``.
        device: where the model runs: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        dtype: ``"auto"`` (float32 on CPU, bfloat16 elsewhere) or a dtype name such as ``"float16"``.
        device_map: spread one model over devices: ``"auto"``, ``"balanced"``, ``"balanced_low_0"``,
            ``"sequential"`` or a JSON object of module name -> device.
        trust_remote_code: let transformers run the model repository's own code.
        seed: seeds the weights of a tiny random model.

    Returns:
        A ``VLMAdapter``: ``score(samples)`` gives option probabilities, ``generate(samples)``
        greedy answers; ``model`` and ``processor`` are the Hugging Face objects.

    Raises:
        ModelLoadError: the model does not exist, cannot be read, or its family is not supported.
        ValueError: an unknown dtype or a malformed device map.
    """
    return loading.load_adapter(model, device=device, dtype=dtype, device_map=device_map,
                                trust_remote_code=trust_remote_code, seed=seed)


def load_benchmark(name: str = "mini", split: str = "test", limit: int | None = None, **options: Any) -> list[Sample]:
    """Load the samples of a benchmark.

    Args:
        name: a registered benchmark (``"mini"``, bundled), a path to a dataset folder or file
            (its format is detected, or given as ``format=...``; options may follow ``?``), or
            several of these separated by commas (ids are then prefixed with a label).
        split: the split to load (``"train"``, ``"val"``, ``"test"``, ... as the benchmark has).
        limit: at most this many samples, spread over the task families.
        **options: passed to the format's loader.

    Returns:
        The ``Sample`` list: id, family, question, options, answer index, image (lazy) and meta.

    Raises:
        BenchmarkError: an unknown benchmark or split, or a benchmark that cannot be read.
    """
    return registry.load_benchmark(name, split=split, limit=limit, **options)


def run_diagnosis(adapter: Any, samples: Sequence[Sample], out_dir: str | Path, config: DiagnoseConfig | None = None,
                  progress: Callable[[int, int], None] | None = None, run_info: dict[str, Any] | None = None,
                  report: bool = True) -> dict[str, Any]:
    """Diagnose modality interference: run ``adapter`` on ``samples`` under clean and perturbed
    conditions, and write the run directory.

    Args:
        adapter: a loaded model (``load_adapter``).
        samples: the samples to diagnose (``load_benchmark``).
        out_dir: the run directory: records.jsonl (streamed; a re-run resumes it), summary.json,
            manifest.json and, with ``report``, report.html.
        config: conditions, seed, batch size, scoring mode, ... (``DiagnoseConfig``; default: every
            condition that applies to each family, seed 0).
        progress: called with (records done, records to do) as the run goes.
        run_info: model, benchmark, split, command, ... recorded in summary.json and manifest.json.
        report: also write report.html (a failure to write it is logged, never raised: the
            records and the summary are what the run is for).

    Returns:
        The summary (also in summary.json): per family and condition, accuracy with its 95% CI,
        the paired delta against the family's reference condition with its CI, flip rates,
        McNemar's p and more. Empty on the non-zero ranks of a multi-process run.

    Raises:
        ValueError: a bad config (unknown scoring mode, batch size below 1, ...).
        KeyError: an unknown condition name.
        SampleError: a bad sample, with ``config.strict``.
    """
    summary = engine.run_diagnosis(adapter, samples, out_dir, config, progress=progress, run_info=run_info)
    if summary and report:
        write_report_safely(out_dir, samples=samples)
    return summary


def train(adapter: Any, samples: Sequence[Sample], out_dir: str | Path, cfg: TrainConfig | None = None,
          progress: Callable[[int, int, dict], None] | None = None, resume: bool = False,
          logger: Any = None, selector: Any = None) -> Path:
    """Fine-tune a model against modality interference (heuristic views + embedding-space PGD +
    consistency, or a simpler recipe).

    Args:
        adapter: a loaded model (``load_adapter``); it is trained in place.
        samples: the training samples (``load_benchmark(..., split="train")``); anchors are drawn
            with per-family quotas.
        out_dir: where the model (OUT/model, Hugging Face layout), the log (OUT/train_log.jsonl)
            and checkpoints (OUT/checkpoint/) go.
        cfg: the training settings (``TrainConfig``; default: the published recipe ``aug_kl_pgd``;
            ``modint.mitigate.config.from_sources`` builds one from a preset, YAML and overrides).
        progress: called with (step, total steps, loss parts) after every step.
        resume: continue from OUT/checkpoint.
        logger: receives each logged step on rank 0 (``modint.mitigate.logging_backends``:
            TensorBoard, Weights & Biases); None: only OUT/train_log.jsonl.
        selector: scores the weights on val at every checkpoint and after the last step and keeps
            the best (``modint.mitigate.select.CheckpointSelector``; one process only).

    Returns:
        The directory of the fine-tuned model (OUT/model).

    Raises:
        ValueError: bad settings, too few samples for one batch, or a combination not supported
            under sharded training.
    """
    return _training.train(adapter, samples, out_dir, cfg, progress=progress, resume=resume, logger=logger,
                           selector=selector)


def train_and_diagnose(adapter: Any, samples: Sequence[Sample], out_dir: str | Path, cfg: TrainConfig | None = None,
                       diagnoses: Sequence[tuple[str, Sequence[Sample], dict[str, Any]]] = (), eval_seed: int = 0,
                       progress: Callable[[int, int, dict], None] | None = None,
                       diagnosis_progress: Callable[[str, int, int], None] | None = None, resume: bool = False,
                       logger: Any = None, selector: Any = None) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Fine-tune a model (``train``), then diagnose the trained model on each split asked for.

    Args:
        adapter: a loaded model (``load_adapter``); it is trained in place, then diagnosed.
        samples: the training samples.
        out_dir: the training output directory (as for ``train``); the diagnoses go in folders under it.
        cfg: the training settings (``TrainConfig``; default: the published recipe).
        diagnoses: (folder under ``out_dir``, samples, run_info) per diagnosis, run in this order,
            each with the default conditions and its report written.
        eval_seed: the seed of every diagnosis (perturbation draws, CIs); the training seed is
            ``cfg.seed``, so a diagnosis pairs with one of the model before training.
        progress: called with (step, total steps, loss parts) after every training step.
        diagnosis_progress: called with (folder, records done, records to do) as each diagnosis goes.
        resume: continue the training from OUT/checkpoint.
        logger: receives each logged training step (as for ``train``).
        selector: keeps the best weights on val (as for ``train``).

    Returns:
        The directory of the fine-tuned model, and each diagnosis's summary by folder (empty on
        the non-zero ranks of a multi-process run).

    Raises:
        ValueError: as for ``train``.
    """
    model_dir = train(adapter, samples, out_dir, cfg, progress=progress, resume=resume, logger=logger,
                      selector=selector)
    summaries = {}
    for folder, eval_samples, run_info in diagnoses:
        report = None if diagnosis_progress is None else functools.partial(diagnosis_progress, folder)
        summaries[folder] = run_diagnosis(adapter, eval_samples, Path(out_dir) / folder, DiagnoseConfig(seed=eval_seed),
                                          progress=report, run_info=run_info)
    return model_dir, summaries


def attack(adapter: Any, samples: Sequence[Sample], space: str = "embed", config: PGDConfig | None = None,
           embed_text: str = "after_image", share: bool = True) -> list[AttackOutcome]:
    """Projected gradient descent on the irrelevant modality of each sample.

    Args:
        adapter: a loaded model (``load_adapter``).
        samples: the samples to attack, each with an image: text-heavy ones in pixel space;
            image-heavy or text-heavy ones in embedding space. Images are decoded here.
        space: ``"pixel"`` (the image's pixels, through the model's own preprocessing) or
            ``"embed"`` (the irrelevant modality's input embeddings of the language model).
        config: eps (pixel: in 1/255; embed: relative to the embeddings' RMS), steps, step rule,
            restarts, targeted (``PGDConfig``; default: eps 0.1, 10 sign steps).
        embed_text: which text of an image-heavy sample the embedding attack perturbs:
            ``"after_image"`` (the sample's text, after its image) or ``"all"`` (the chat header
            before the image too).
        share: with ``"after_image"``, compute the header + image prefix once per batch and run
            the PGD iterations on the text after it (same result within float error); False:
            full forwards.

    Returns:
        One ``AttackOutcome`` per sample: option probabilities and prediction under the attack,
        the target option of a targeted attack, the adversarial image (pixel space) and the size
        of the perturbation applied.

    Raises:
        ValueError: an unknown space, a sample of a family the space does not attack, a sample
            without an image, or a bad config.
    """
    decoded = [s.replace(image=load_image(s)) for s in samples]
    return _attacks.attack(adapter, decoded, space, config or PGDConfig(eps=0.1), embed_text=embed_text,
                           share=share)
