#!/usr/bin/env bash
# Lints .github/workflows/ with actionlint, a Go module run at the version pinned here (the Go module proxy serves it;
# the first run downloads it into Go's module cache). Without Go it says so and lints nothing.
set -euo pipefail
ACTIONLINT=github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v go >/dev/null; then
  echo "lint-workflows: go is not installed: .github/workflows/ is not linted" >&2
  exit 0
fi
cd "$root"
go run "$ACTIONLINT" -color=false .github/workflows/*.yml
echo "lint-workflows: .github/workflows/ passes actionlint"
