"""Synthetic OCELOT data: scenes rendered at two fields of view, datasets, statistics, pictures.

The formats and layouts these are written in live in :mod:`evaluation` (release, Grand
Challenge layouts, pairs).
"""

from baseline_algorithm.data.synthesize import synthesize_dataset

__all__ = ["synthesize_dataset"]
