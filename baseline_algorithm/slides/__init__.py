"""Whole-slide inference: any OCELOT detector on a slide, tile by tile, with its tissue context.

Modules, one job each:

- :mod:`.reader`: open a slide (tifffile, or OpenSlide when installed), its level-0 resolution,
  regions of any level with white outside the slide;
- :mod:`.fields`: a square field of view resampled to a pixel size from the best level;
- :mod:`.tissue`: where the tissue is, from a low-resolution image (scikit-image);
- :mod:`.tiling`: the grid of cell tiles, their cores, and the platform's pair for each tile;
- :mod:`.journal`: the finished tiles of an interrupted run, so that a rerun continues;
- :mod:`.outputs`: the "Multiple points" document and QuPath's GeoJSON;
- :mod:`.run`: ``predict-slide`` as its steps;
- :mod:`.cohort`: ``predict-slides``, one slide per Dask task;
- :mod:`.synthetic`: a pyramidal TIFF slide from the synthetic generator, with its ground truth.
"""

__all__: list[str] = []
