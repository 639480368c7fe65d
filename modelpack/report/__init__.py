"""HTML reports of load tests: one self-contained file a person would rather look at than read."""

from modelpack.report.data import ReportData, ServerInfo
from modelpack.report.render import render_html, write_report

__all__ = ["ReportData", "ServerInfo", "render_html", "write_report"]
