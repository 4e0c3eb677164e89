"""The ``astroco`` command line: one sub-command per module in :mod:`astroco_hf.commands`, and the
boundary where user errors and astroco_hf's warnings become one line.

The commands, their modules and one-line help are listed once, in :data:`astroco_cli.COMMANDS` (the console
script's module beside the package, which answers ``--help`` / ``--version`` / a mistyped command without
importing this package, see its docstring). A command module defines ``add_arguments(parser)`` and
``run(args) -> int`` (or, instead of ``add_arguments``, ``build_parser(prog) -> ArgumentParser`` for a parser
of its own, e.g. an ``HfArgumentParser``). Only the chosen command's module is imported, and its heavy
imports happen inside ``run``. ``python -m astroco_hf.cli`` and :func:`main` take the same command lines.

Errors: a :class:`~astroco_hf.errors.UserError`, and the foreign errors a user causes with a bad path or
file (see :func:`describe_user_error`), end the command with exit status 2 and one line on stderr,
``astroco COMMAND: error: MESSAGE``. ``--debug`` (anywhere on the command line) or ``ASTROCO_DEBUG=1``
re-raises them with the traceback. Anything else is a bug and keeps its traceback.

Signals: Ctrl-C (SIGINT) and SIGTERM unwind the command (temporary outputs are removed) and end it
with status 130 / 143 and one line; pretraining checkpoints first (its own handler, see
:mod:`astroco_hf.training.callbacks`).

Warnings: an :class:`~astroco_hf.errors.AstroCoWarning` raised while a command runs is printed as one line,
``astroco COMMAND: warning: MESSAGE``, each distinct message once per run; with ``--debug`` Python shows it
as usual (file and line). Other libraries' warnings are left as they are.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from astroco_cli import DEBUG_HELP, Command, answer_without_package, command_of
from astroco_cli import build_parser as build_top_level_parser

from .errors import AstroCoWarning, TrainingInterrupted, UserError
from .outputs import Terminated, sigterm_unwinds

_PACKAGE_DIR = Path(__file__).resolve().parent


def _add_command(subparsers: argparse._SubParsersAction, command: Command) -> None:
    """The full sub-parser of ``command`` (its module imported here), with ``--debug`` and its ``run``."""
    module = importlib.import_module(command.module)
    if hasattr(module, "build_parser"):  # a parser of its own: main() hands it the rest of the line
        own = module.build_parser(f"astroco {command.name}")
        own.description = command.help
        own.add_argument("--debug", action="store_true", help=DEBUG_HELP)
        sub = subparsers.add_parser(command.name, help=command.help, add_help=False)
        sub.set_defaults(_own_parser=own)
        _usage_errors_in_one_line(own)
    else:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        module.add_arguments(sub)
        sub.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    _usage_errors_in_one_line(sub)
    sub.set_defaults(_run=module.run, _parser=sub)


def _usage_errors_in_one_line(parser: argparse.ArgumentParser) -> None:
    """A command's argparse errors (a bad flag value, a missing required flag) as one line and status 2,
    like its other user errors, instead of the whole usage block first (``--help`` shows that)."""

    def error(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")

    parser.error = error  # type: ignore[method-assign]


@contextmanager
def _library_progress_bars(shown: bool) -> Iterator[None]:
    """``--no-progress`` also hides the bars transformers (weights loading) and datasets (map, save) draw,
    for the command only: a caller of :func:`main` in a notebook keeps its settings."""
    if shown:
        yield
        return
    import datasets
    import transformers

    transformers_bars = transformers.utils.logging.is_progress_bar_enabled()
    datasets_bars = not datasets.are_progress_bars_disabled()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if transformers_bars:
            transformers.utils.logging.enable_progress_bar()
        if datasets_bars:
            datasets.enable_progress_bars()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``astroco`` parser; only ``command``'s own arguments are built (all commands are listed)."""
    return build_top_level_parser(command, _add_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``astroco ARGV`` (default: ``sys.argv[1:]``); the exit status (argparse errors: ``SystemExit(2)``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    answer_without_package(argv)  # --help, --version, no or an unknown command: exits
    command = command_of(argv)
    parser = build_parser(command)
    args, rest = parser.parse_known_args(argv)
    debug = args.debug_anywhere or os.environ.get("ASTROCO_DEBUG", "") not in ("", "0")
    if hasattr(args, "_own_parser"):
        run = args._run
        args = args._own_parser.parse_args(rest)
        args.command, args._run = command, run
    elif rest:
        args._parser.error(f"unrecognized arguments: {' '.join(rest)}")
    debug = debug or args.debug
    try:
        with (_one_line_warnings(command, enabled=not debug), sigterm_unwinds(),
              _library_progress_bars(shown=not getattr(args, "no_progress", False))):
            return int(args._run(args) or 0)
    except KeyboardInterrupt as error:
        if debug:
            raise
        signum = error.signal_number if isinstance(error, Terminated) else signal.SIGINT
        print(f"astroco {command}: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    except Exception as error:  # noqa: BLE001 - sorted into user errors and bugs right here
        message = describe_user_error(error)
        if message is None or debug:
            raise
        label = "" if isinstance(error, TrainingInterrupted) else "error: "  # a requested stop, not a mistake
        print(f"astroco {command}: {label}{message}", file=sys.stderr)
        return getattr(error, "exit_code", 2)


@contextmanager
def _one_line_warnings(command: str, *, enabled: bool) -> Iterator[None]:
    """Show each distinct :class:`AstroCoWarning` message once, as ``astroco COMMAND: warning: MESSAGE``."""
    if not enabled:
        yield
        return
    shown: set[str] = set()
    with warnings.catch_warnings():
        foreign = warnings.showwarning
        # "always": this run's own `shown` decides, not a registry left by an earlier main() in the process.
        warnings.filterwarnings("always", category=AstroCoWarning)

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            if not issubclass(category, AstroCoWarning):
                foreign(message, category, filename, lineno, file, line)
                return
            text = _one_line(str(message))
            if text not in shown:
                shown.add(text)
                print(f"astroco {command}: warning: {text}", file=sys.stderr)

        warnings.showwarning = show
        yield


def describe_user_error(error: BaseException) -> str | None:
    """One line for an error the user caused and can fix, or None for a bug (keep the traceback).

    User errors are: :class:`~astroco_hf.errors.UserError`; a ``ValueError`` raised by astroco_hf's own
    validation (its innermost frame is in this package); a missing / unreadable path (``FileNotFoundError``,
    ``PermissionError``, ``IsADirectoryError``, ``NotADirectoryError``); a file pyarrow or safetensors cannot
    read (named from the traceback: the innermost frame variable that is an existing file); a model path
    that is neither a folder nor a Hub repository (transformers' ``OSError``, huggingface_hub's repo-id
    validation) -> ``no such model folder: PATH``.
    """
    chain = [error]
    while chain[-1].__cause__ is not None and len(chain) < 8:
        chain.append(chain[-1].__cause__)
    names = {f"{cls.__module__}.{cls.__qualname__}" for item in chain for cls in type(item).__mro__}
    if isinstance(error, UserError):
        return _one_line(str(error))
    model = _frame_value(error.__traceback__, "pretrained_model_name_or_path")
    hub_errors = {"huggingface_hub.errors.HFValidationError", "huggingface_hub.errors.RepositoryNotFoundError"}
    if (names & hub_errors or isinstance(error, OSError)) and isinstance(model, (str, os.PathLike)) \
            and not Path(model).is_dir() and not isinstance(error, (PermissionError,)):
        return (f"no such model folder: {os.fspath(model)} (pass a folder written by `astroco pretrain` / "
                "`save_pretrained`, or an existing Hub repository id)")
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        where = error.filename if error.filename is not None else ""
        return _one_line(f"{error.strerror or error}: {where}" if where else str(error))
    if any(name.startswith(("pyarrow.lib.ArrowException", "safetensors.")) for name in names):
        path = _file_in_traceback(error.__traceback__)
        what = f"cannot read {path}" if path else "cannot read an input file"
        return f"{what}: {_one_line(str(error))} (is the file complete and in the right format?)"
    if "huggingface_hub.errors.StrictDataclassError" in names:  # a config.json value of the wrong type / range
        path = _file_in_traceback(error.__traceback__)
        cause = error.__cause__ or error
        return _one_line(f"{path}: {cause}" if path else str(cause))
    if isinstance(error, ValueError) and _raised_in_package(error.__traceback__):
        return _one_line(str(error))
    if isinstance(error, OSError) and _raised_in_package(error.__traceback__, "transformers"):
        return _one_line(str(error))
    return None


def _one_line(text: str) -> str:
    lines = [" ".join(line.split()) for line in str(text).strip().splitlines() if line.strip()]
    return "; ".join(lines) if lines else "(no message)"


def _frames(traceback: TracebackType | None) -> list:
    frames = []
    while traceback is not None:
        frames.append(traceback.tb_frame)
        traceback = traceback.tb_next
    return frames


def _raised_in_package(traceback: TracebackType | None, package: str = "astroco_hf") -> bool:
    """Whether the innermost Python frame of ``traceback`` belongs to ``package``."""
    frames = _frames(traceback)
    if not frames:
        return False
    filename = Path(frames[-1].f_code.co_filename).resolve()
    if package == "astroco_hf":
        return _PACKAGE_DIR in filename.parents
    return package in filename.parts


def _frame_value(traceback: TracebackType | None, name: str) -> object:
    """The value of variable ``name`` in the outermost frame of ``traceback`` that has one, or None."""
    for frame in _frames(traceback):
        if name in frame.f_locals:
            return frame.f_locals[name]
    return None


def _file_in_traceback(traceback: TracebackType | None) -> str | None:
    """The file being read when ``traceback`` was raised: the innermost frame local that names an existing file."""
    for frame in reversed(_frames(traceback)):
        for value in frame.f_locals.values():
            if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
                text = os.fspath(value)
                if len(text) < 4096 and "\n" not in text and os.path.isfile(text):
                    return text
    return None


if __name__ == "__main__":
    sys.exit(main())
