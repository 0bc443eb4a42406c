#!/usr/bin/env bash
# The benchmark corpora's documents come from Debian packages (eval/corpora/*/corpus.json says
# which). Installs the missing packages when it can (root, or sudo without a password), then
# copies the files into eval/corpora/<name>/docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
packages=$("$PY" - <<'PY'
import json, pathlib, subprocess
names = set()
def installed(f):
    if "man" in f:  # a manual page: does `man -w` find it?
        return subprocess.run(["man", "-w", *f["man"].split()], capture_output=True).returncode == 0
    return pathlib.Path(f["from"]).exists()
for p in pathlib.Path("eval/corpora").glob("*/corpus.json"):
    for f in json.loads(p.read_text())["files"]:
        if "package" in f and not installed(f):
            names.add(f["package"])
print(" ".join(sorted(names)))
PY
)
if [ -n "$packages" ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "install these Debian packages first: $packages" >&2; exit 1
    fi
    $SUDO apt-get install -y -q $packages >/dev/null || {
        $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q $packages >/dev/null; }
fi
"$PY" -m bench.corpora fetch
