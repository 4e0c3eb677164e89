"""``astroco pretrain``: masked-reconstruction pretraining on `transformers.Trainer`.

Every field of :class:`~astroco_hf.training.recipes.PretrainingArguments` is a flag (``--max-steps`` or
``--max_steps``), parsed by :class:`~astroco_hf.training.recipes.PretrainingArgumentParser` (an
``HfArgumentParser``); values resolve as: dataclass defaults < ``--preset`` recipe < ``--config FILE`` <
explicit flags.
"""

from __future__ import annotations

import argparse

EPILOG = """examples:
  astroco pretrain                                          # astroco-tiny on the embedded MACHO sample (CPU minutes)
  astroco pretrain --preset astroco-s --data runs/macho_prepared --output-dir runs/s
  astroco pretrain --config configs/pretrain/cpu-public-data.yaml --max-time-minutes 50
  astroco pretrain --config runs/s/training_config.json --resume   # continue a run from its last checkpoint
  astroco pretrain --preset astroco-s --data DIR --device-data --torch-compile --batch-size 1024 --learning-rate 1.5e-3
                                                            # one GPU: batches drawn on the device, lr by sqrt(B / 256)
  torchrun --nproc_per_node 4 -m astroco_hf.cli pretrain --preset astroco-s --data DIR
  accelerate launch --config_file configs/accelerate/multi_gpu_4.yaml -m astroco_hf.cli pretrain --preset astroco-s --data DIR

Config files: configs/pretrain/cpu-public-data.yaml (the CPU recipe), configs/pretrain/astroco-s-paper.yaml,
configs/pretrain/astroco-l-paper.yaml. SIGTERM or Ctrl-C saves a checkpoint of the current step and prints
the command that resumes the run (exit status 143 / 130).
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    from ..training.recipes import PretrainingArgumentParser

    usage = f"{prog} [--preset NAME] [--config FILE] [--data PATH ...] [--output-dir DIR] [--resume] [--FIELD VALUE ...]"
    return PretrainingArgumentParser(prog=prog, usage=usage, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)


def _check_window_fits(window: int, batch_size: int, gradient_accumulation_steps: int) -> None:
    """Refuse a window whose attention cannot fit in this machine's memory, before any output.

    The bound is a floor: one fp32 attention map of one head, (window, window) per window of a process's
    micro-batch (``batch_size`` / accumulation steps / ``$WORLD_SIZE``); training holds many more.
    """
    import os

    from ..errors import PretrainingConfigError

    micro_batch = max(1, batch_size // gradient_accumulation_steps // int(os.environ.get("WORLD_SIZE", "1")))
    needed = micro_batch * window**2 * 4
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > memory:
        raise PretrainingConfigError(
            f"window {window} cannot fit: one attention map of a micro-batch of {micro_batch} windows takes "
            f"{needed / 2**30:,.0f} GiB (batch x window^2 x 4 bytes), this machine has {memory / 2**30:,.0f} GiB; "
            "choose a smaller --window (the paper's is 200) or --batch-size")


def run(args: argparse.Namespace) -> int:
    # From the submodules: once `astroco_hf.training.pretrain` is imported, the package attribute
    # `pretrain` is that module, not the function.
    from ..training.pretrain import pretrain
    from ..training.recipes import resolve_arguments

    overrides = {key: value for key, value in vars(args).items()
                 if key not in ("config", "command", "debug", "_run")}
    arguments = resolve_arguments(config_file=args.config, **overrides)
    _check_window_fits(arguments.window, arguments.batch_size, arguments.gradient_accumulation_steps)
    pretrain(arguments)
    return 0
