"""Hub releases: the exact folder to upload (weights, config, remote code, model card with measured
results, run records) and its upload with ``HfApi``. See :func:`build_release_folder`."""

from .cards import render_model_card
from .release import (
    ReleaseError,
    build_release_folder,
    check_repo_id,
    push_release,
    read_release_info,
    require_token,
)

__all__ = [
    "ReleaseError",
    "build_release_folder",
    "check_repo_id",
    "push_release",
    "read_release_info",
    "render_model_card",
    "require_token",
]
