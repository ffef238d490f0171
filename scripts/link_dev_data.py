"""Make the development data sets readable by name: `data/<config>` → the copy on disk.

    python scripts/link_dev_data.py [--shared ../shared/datasets] [--data data]

recx looks for a data set's raw files in `${paths.data}/<config name>/` (default `data/`,
or `$RECX_DATA`) before it downloads. This links each development copy there, so that
`recx transfer target=yelp_a` works without `dataset.raw_dir=...`. Only symbolic links are
created: nothing is copied (the copies must never enter the repository; `data/` is ignored).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from dataset_stats import DEV, default_shared  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=None, help="folder of the development copies")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("RECX_DATA", REPO / "data")),
                    help="recx's raw-data folder (paths.data)")
    args = ap.parse_args()
    shared = (args.shared or default_shared()).resolve()
    if not shared.is_dir():
        print(f"no development data sets at {shared}; pass --shared DIR", file=sys.stderr)
        return 1
    args.data.mkdir(parents=True, exist_ok=True)
    for name, folder, extra, _ in DEV:
        if extra:  # an alternative layout of a data set already linked
            continue
        link, src = args.data / name, shared / folder
        if not src.is_dir():
            print(f"skip {name}: {src} is missing", file=sys.stderr)
            continue
        if link.is_symlink() or link.exists():
            if link.is_symlink() and link.resolve() == src:
                continue
            print(f"skip {name}: {link} exists and points elsewhere", file=sys.stderr)
            continue
        link.symlink_to(src, target_is_directory=True)
        print(f"{link} → {src}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
