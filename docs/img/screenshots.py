"""Redraw docs/img/coverage.png and docs/img/balance.png (1280×860, < 400 KB each).

The main job's sample county (20,000 households, seed 0), its grids and staff, the
coverage and balance maps saved offline, opened in Debian chromium (Playwright) at
the zoom that fits its largest township, once the labels have made room::

    .venv/bin/python docs/img/screenshots.py

Needs the dev extra (Playwright) and ``chromium``; no database, no network.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_BYTES = 400_000
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
MAP = "window[document.querySelector('.folium-map').id]"


def build(out: Path) -> tuple[dict[str, Path], list[list[float]]]:
    """The two maps as HTML files and the bounds of the largest township."""
    sys.path.insert(0, str(HERE.parents[1]))
    import maps
    from geo.gridding.generate import generate_grids
    from geo.sample import generate_county

    c = generate_county(20_000, seed=0)
    plan = maps.sample_coverage(
        generate_grids(c.households, c.areas, barriers=c.barriers),
        c.households,
        c.people,
    )
    town = plan.grids["area_code"].str[:9].value_counts().index[0] + "000"
    x0, y0, x1, y1 = c.areas.set_index("code").loc[[town]].total_bounds
    pages = {
        "coverage": maps.save_html(
            maps.coverage_map(
                plan,
                c.households,
                people=c.people,
                areas=c.areas,
                barriers=c.barriers,
                context=maps.Context(areas=c.areas),  # village and township lines
            ),
            out / "coverage.html",
        ),
        "balance": maps.save_html(
            maps.balance_map(plan, areas=c.areas, context=maps.Context(areas=c.areas)),
            out / "balance.html",
        ),
    }
    return pages, [[float(y0), float(x0)], [float(y1), float(x1)]]


def shoot(pages: dict[str, Path], town: list[list[float]]) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        for name, path in pages.items():
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.route(
                "**/*",
                lambda r: (
                    r.continue_()
                    if r.request.url.startswith(("file://", "data:", "blob:"))
                    else r.abort()
                ),
            )
            page.goto(path.as_uri())
            page.wait_for_selector("[data-gridmap-ready]", timeout=60_000)
            seen = page.evaluate(
                "() => +document.querySelector('.folium-map')"
                ".getAttribute('data-gridmap-labels')"
            )
            page.evaluate(f"() => {{ {MAP}.fitBounds({town!r}, {{animate: false}}); }}")
            page.wait_for_function(
                "() => +document.querySelector('.folium-map')"
                f".getAttribute('data-gridmap-labels') > {seen}"
            )
            png = page.screenshot()
            img = Image.open(io.BytesIO(png)).convert("RGB")
            target = HERE / f"{name}.png"
            for colours in (256, 128, 64):
                buf = io.BytesIO()
                img.quantize(colours, dither=Image.Dither.NONE).save(
                    buf, "PNG", optimize=True
                )
                if buf.tell() < MAX_BYTES:
                    break
            target.write_bytes(buf.getvalue())
            shown = page.evaluate(
                "() => document.querySelectorAll('.gm-label:not(.gm-label-hidden)').length"
            )
            print(f"{target.name}: {buf.tell():,} bytes, {img.size}, {shown} labels")
            page.close()
        browser.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        shoot(*build(Path(tmp)))
