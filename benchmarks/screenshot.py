"""The README's screenshot of the search page: the example archive (examples/archive)
indexed with the default model, served on 127.0.0.1, the page opened in Debian's headless Chromium
(Playwright) with the demo query, saved as docs/serve.png.

    python benchmarks/screenshot.py [--query "Wer liefert Waffen?"] [--out docs/serve.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "search"))  # the browser test finds Chromium


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=Path, default=ROOT / "examples" / "archive")
    ap.add_argument("--query", default="Wer liefert Waffen?")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "serve.png")
    ap.add_argument("--width", type=int, default=1100)
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright
    from test_serve_browser import chromium_path

    from indexer import Indexer
    from search.server import ServerConfig, create_app, serving

    browser_exe = chromium_path()
    if browser_exe is None:
        raise SystemExit("no Chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        Indexer(args.seeds, index).update()
        app = create_app(ServerConfig(index, seeds_dir=args.seeds))
        with serving(app) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=browser_exe, headless=True, args=["--lang=de-DE"]
            )
            page = browser.new_page(viewport={"width": args.width, "height": 900}, locale="de-DE")
            page.goto(f"{url}/?{urlencode({'q': args.query, 'k': 5})}")
            page.wait_for_selector("ol.hits")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
