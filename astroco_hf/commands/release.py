"""``astroco release``: build the exact Hub folder of a trained model, then upload it (or stop there)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="trained model folder holding the eval_results.json written by `astroco pretrain`")
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="target model repository on the Hub")
    parser.add_argument("--dry-run", action="store_true",
                        help="build the folder in --out and stop right before the network")
    parser.add_argument("--out", metavar="DIR",
                        help="folder to build (required with --dry-run; an upload uses a temporary one by default)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--token", metavar="T", help="Hugging Face token with write access (default: $HF_TOKEN)")
    parser.add_argument("--fewshot", nargs="+", default=[], metavar="PATH",
                        help="fewshot_results.json files (or `astroco fewshot --out` folders) measured on this model")
    parser.add_argument("--dataset", nargs="+", default=[], metavar="ID", dest="datasets",
                        help="Hub dataset ids the model was trained on (card metadata)")
    parser.add_argument("--base-model", metavar="ID", help="Hub id of the model this one was fine-tuned from")
    parser.add_argument("--template", metavar="PATH", help="model card template (default: model_cards/<preset>.md)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier release folder at --out")


def run(args: argparse.Namespace) -> int:
    from ..release import (
        ReleaseError,
        build_release_folder,
        check_repo_id,
        push_release,
        read_release_info,
        require_token,
    )

    token = args.token or os.environ.get("HF_TOKEN")
    try:
        # Checks that need no files come first, so that a real upload without a token fails at once.
        check_repo_id(args.repo_id)
        if args.dry_run and not args.out:
            raise ReleaseError("--dry-run needs --out DIR: the folder that would be uploaded is built there.")
        if not args.dry_run:
            require_token(token)
        if args.out and Path(args.out).is_file():
            raise ReleaseError(f"--out {args.out} is a file; the release is built in a folder")
        with contextlib.ExitStack() as stack:
            out = args.out or stack.enter_context(tempfile.TemporaryDirectory(prefix="astroco-release-"))
            folder = build_release_folder(
                args.model, out, args.repo_id, fewshot=args.fewshot, datasets=args.datasets,
                base_model=args.base_model, template=args.template, overwrite=args.overwrite,
            )
            files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
            print(f"release folder {folder} for {args.repo_id}:")
            for path in files:
                print(f"  {path.relative_to(folder).as_posix():40s} {path.stat().st_size:>12,} bytes")
            if args.dry_run:
                message = read_release_info(folder)["commit_message"]
                print(f"dry run: nothing was sent. Without --dry-run this folder is built and uploaded to "
                      f"{args.repo_id} in one commit: {message!r}")
                return 0
            commit = push_release(folder, token=token, private=args.private)
            print(f"uploaded to https://huggingface.co/{args.repo_id} ({commit.commit_url})")
    except ReleaseError as error:
        print(f"astroco release: error: {error}", file=sys.stderr)
        return 2
    return 0
