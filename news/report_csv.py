"""A report as CSV, the way the audit export writes it (auth/audit/export.py): UTF-8 with a BOM
so that a spreadsheet shows Vietnamese unit names, every cell quoted, and a cell that would start
with a formula character prefixed with a quote (unit names are typed by admins)."""

from __future__ import annotations

import csv
import io

from auth.audit.export import BOM, neutralise
from news.reports import Report

HEADER = (
    "period_start",
    "period",
    "app",
    "unit_id",
    "unit_name",
    "breakdown",
    "key",
    "notifications",
    "devices_targeted",
    "devices_sent",
    "devices_invalid",
    "devices_failed",
    "readers_reached",
    "readers_opened",
    "open_rate",
)


def report_csv(report: Report) -> str:
    """The whole file: a report has at most a few thousand rows (366 days × units × keys)."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(HEADER)
    for row in report.rows:
        f = row.figures
        rate = f.open_rate
        cells = [
            row.period.isoformat(),
            report.query.grain,
            row.app,
            str(row.unit_id) if row.unit_id else "",
            row.unit_name or "",
            row.breakdown,
            row.key,
            str(f.notifications) if row.breakdown != "language" else "",
            str(f.targeted),
            str(f.sent),
            str(f.invalid),
            str(f.failed),
            str(f.received),
            str(f.opened),
            "" if rate is None else f"{rate:.4f}",
        ]
        writer.writerow([neutralise(cell) for cell in cells])
    return BOM + out.getvalue()
