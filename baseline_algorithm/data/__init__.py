"""OCELOT data layer: readers of the release and Grand Challenge layouts, synthetic data, statistics."""

from .pairs import BC, TC, TISSUE_BACKGROUND, TISSUE_CANCER, TISSUE_UNKNOWN, DataError, Pair, cell_box_in_tissue
from .release import ReleaseDataset
from .stacked import StackedPatches, iter_gc_input_pairs, write_stacked_tiff
from .synthesize import synthesize_dataset

__all__ = [
    "BC",
    "TC",
    "TISSUE_BACKGROUND",
    "TISSUE_CANCER",
    "TISSUE_UNKNOWN",
    "DataError",
    "Pair",
    "ReleaseDataset",
    "StackedPatches",
    "cell_box_in_tissue",
    "iter_gc_input_pairs",
    "synthesize_dataset",
    "write_stacked_tiff",
]
