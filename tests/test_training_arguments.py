"""Pretraining arguments: HfArgumentParser flags, config files and their resolution order, the old
spellings (README lines, `bf16` keys, `--no-FLAG`), the window declared once, and `--help`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from astroco_hf.cli import main
from astroco_hf.commands.pretrain import build_parser
from astroco_hf.errors import PretrainingConfigError
from astroco_hf.training import resolve_arguments
from astroco_hf.training.recipes import load_config_file

REPO = Path(__file__).resolve().parents[1]


def _resolve_command_line(*argv: str):
    """What `astroco pretrain ARGV` would train with (the command's own resolution, without running it)."""
    values = vars(build_parser("astroco pretrain").parse_args(list(argv)))
    return resolve_arguments(config_file=values.pop("config"), **values)


def test_flags_override_only_what_they_name(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("preset: astroco-s\nexact_batch_rmse: true\npatience: 7\nmodel_overrides: {dropout: 0.2}\n")
    args = _resolve_command_line("--config", str(config), "--max-steps", "3", "--model-overrides", "num_layers=2",
                                 "--no-bf16")
    assert (args.preset, args.exact_batch_rmse, args.patience, args.max_steps) == ("astroco-s", True, 7, 3)
    assert args.model_overrides == {"dropout": 0.2, "num_layers": 2} and args.precision == "fp32"
    assert args.learning_rate == 7.5e-4  # the preset's, not the dataclass default
    again = _resolve_command_line("--config", str(config), "--no-exact-batch-rmse", "--patience", "None")
    assert again.exact_batch_rmse is False and again.patience is None


def test_yaml_strings_and_old_keys_are_read(tmp_path):
    config = tmp_path / "run.yaml"  # YAML 1.1 reads 1e-3 as a string; `bf16` is the old name of precision
    config.write_text("learning_rate: 1e-3\nbf16: false\nwarmup_steps: 100\npatience: null\n")
    args = resolve_arguments(config_file=config)
    assert (args.learning_rate, args.precision, args.warmup_steps, args.patience) == (1e-3, "fp32", 100.0, None)
    with pytest.raises(PretrainingConfigError, match="unknown pretraining argument 'max_step'"):
        resolve_arguments(max_step=3)  # the Python API is as strict as the files


def test_window_is_declared_once():
    args = resolve_arguments(window=64)
    assert args.window == 64 and "max_sequence_length" not in args.model_overrides
    from astroco_hf.training.pretrain import _model_config

    assert _model_config(args).max_sequence_length == 64


def test_readme_pretrain_lines_parse():
    """Every `astroco pretrain` command of the README parses, and its config files resolve."""
    parser = build_parser("astroco pretrain")
    lines = [line.split("#")[0] for line in (REPO / "README.md").read_text().splitlines() if line.startswith("astroco pretrain")]
    assert lines
    for line in lines:
        argv = shlex.split(line)[2:]
        args = parser.parse_args(argv)
        if args.config and Path(REPO / args.config).is_file():
            load_config_file(REPO / args.config)


def test_pretrain_help_points_at_existing_config_files(capsys):
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    text = capsys.readouterr().out
    named = set(re.findall(r"configs/[\w/.-]+\.yaml", text))
    assert "configs/pretrain/cpu-public-data.yaml" in named
    assert all((REPO / path).is_file() for path in named), named


def test_device_data_flag():
    assert resolve_arguments().device_data is False  # the CPU input path stays the default
    args = _resolve_command_line("--preset", "astroco-s", "--device-data", "--torch-compile")
    assert args.device_data is True and args.torch_compile is True
    assert _resolve_command_line("--device-data", "--no-device-data").device_data is False
    with pytest.raises(PretrainingConfigError, match="device_data .* dataloader_num_workers must be 0, got 2"):
        resolve_arguments(device_data=True, dataloader_num_workers=2)


def test_torch_compile_mode_reaches_training_arguments(tmp_path):
    from astroco_hf.training.pretrain import build_training_arguments

    args = _resolve_command_line("--torch-compile", "--torch-compile-mode", "reduce-overhead", "--output-dir", str(tmp_path))
    training_args = build_training_arguments(args)
    assert training_args.torch_compile and training_args.torch_compile_mode == "reduce-overhead"
    assert build_training_arguments(resolve_arguments(output_dir=str(tmp_path))).torch_compile_mode is None
    with pytest.raises(PretrainingConfigError, match="torch_compile_mode='max-autotune' needs torch_compile"):
        resolve_arguments(torch_compile_mode="max-autotune")
