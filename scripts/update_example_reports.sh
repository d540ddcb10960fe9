#!/usr/bin/env bash
# Regenerates the committed example report under reports/smoke/ from a fresh smoke run (the shipped mini-trained models, no downloads):
# report.md, report.json, figures/*.png, tables/*.csv|json. Usage (after scripts/setup.sh):
#   bash scripts/update_example_reports.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rm -rf runs/example-smoke
.venv/bin/dcar-bench smoke --out runs/example-smoke --quiet   # (reports/ untouched: the runs record a clean commit)
rm -rf reports/smoke
.venv/bin/dcar-bench report runs/example-smoke --title "dcar-bench smoke run (embedded default)" --out reports/smoke
