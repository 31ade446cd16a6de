"""A training-free OCELOT cell detector: the worked example of a detector package.

Nuclei are the peaks of the haematoxylin optical density of the cell patch; a cell is a tumour
cell when the haematoxylin density of the tissue around it, read from the tissue patch and judged
against the whole tissue patch, is high. See :class:`ClassicalDetector`.

The OCELOT toolkit runs it with ``--detector classical_detector:make_detector``.
"""

from classical_detector.detector import ClassicalDetector, Settings, make_detector

__all__ = ["ClassicalDetector", "Settings", "make_detector"]
