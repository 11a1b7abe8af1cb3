"""Copy the pinned front-end assets from node_modules into the package (no CDN at run time)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "src" / "govshare" / "web" / "static" / "vendor"
ASSETS = {
    "bootstrap/dist/css/bootstrap.min.css": "bootstrap.min.css",
    "bootstrap/dist/js/bootstrap.bundle.min.js": "bootstrap.bundle.min.js",
    "htmx.org/dist/htmx.min.js": "htmx.min.js",
    "echarts/dist/echarts.min.js": "echarts.min.js",
    "swagger-ui-dist/swagger-ui-bundle.js": "swagger-ui-bundle.js",
    "swagger-ui-dist/swagger-ui.css": "swagger-ui.css",
}


def main() -> int:
    DEST.mkdir(parents=True, exist_ok=True)
    for src, name in ASSETS.items():
        path = ROOT / "node_modules" / src
        if not path.exists():
            print(f"missing {path}: run 'npm ci' first", file=sys.stderr)
            return 1
        shutil.copyfile(path, DEST / name)
    print(f"copied {len(ASSETS)} assets into {DEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
