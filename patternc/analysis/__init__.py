"""Analysis of a pattern without an ``n x n`` array: exact keys-per-row counts (``rows``), the
asymptotic class of nnz (``complexity``), the receptive field (``receptive``) and the report of
SPEC section 4 (``report``, rendered by ``render``). See docs/analysis.md."""

from patternc.analysis.render import render_reports
from patternc.analysis.report import GroupReport, Report, keys_per_row, report

__all__ = ["GroupReport", "Report", "keys_per_row", "render_reports", "report"]
