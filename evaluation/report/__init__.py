"""The visual report of ``python -m evaluation report``: confidence curves, intervals, overlays.

Drawing needs matplotlib (the ``report`` extra); overlays also need the image readers of
:mod:`evaluation.images` (the ``images`` extra), imported only when images are given.
"""

from evaluation.report.analysis import Analysis, analyse, image_rows
from evaluation.report.build import REPORT_FILES, write_report

__all__ = ["REPORT_FILES", "Analysis", "analyse", "image_rows", "write_report"]
