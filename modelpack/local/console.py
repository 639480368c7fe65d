"""What `modelpack run` prints: placement, results (the LoadTest status fields) and the SLO verdict."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from modelpack.api.loadtest import LoadTestStatus
from modelpack.local.servers import LocalServer
from modelpack.report.summary import status_rows, verdict_line


def _models_cell(models: Sequence[str], shown: int = 3) -> str:
    head = ", ".join(models[:shown])
    return head + (f", … ({len(models)} models)" if len(models) > shown else "")


def placement_table(pack: str, servers: Sequence[LocalServer]) -> Table:
    table = Table(title=f"ModelPack {pack}: {len(servers)} servers", title_justify="left")
    table.add_column("server")
    table.add_column("port", justify="right")
    table.add_column("models", justify="right")
    table.add_column("threads", justify="right")
    table.add_column("first models")
    for s in servers:
        table.add_row(s.name, str(s.port), str(len(s.models)), str(s.threads), _models_cell(s.models))
    return table


def results_table(name: str, status: LoadTestStatus) -> Table:
    table = Table(title=f"LoadTest {name}: {status.phase}", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", justify="right")
    for label, value in status_rows(status):
        table.add_row(label, value)
    return table


def print_verdict(console: Console, status: LoadTestStatus) -> None:
    line = verdict_line(status)
    style = "bold red" if status.phase == "Failed" else "dim" if status.slo is None else "bold green"
    console.print(line, style=style)
