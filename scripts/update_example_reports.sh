#!/usr/bin/env bash
# Regenerates the committed example reports under reports/ from fresh runs (no weights, no downloads).
# Usage: bash scripts/update_example_reports.sh   (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rm -rf runs/example-smoke
.venv/bin/dcar-bench smoke --out runs/example-smoke --quiet
mkdir -p reports/smoke
.venv/bin/dcar-bench report runs/example-smoke/[0-9]* --title "dcar-bench smoke run (embedded default)" \
    --out reports/smoke/report.md
echo "reports/smoke/report.md"
