"""Vendored Leaflet assets inlined into the page: offline maps in one HTML file."""

from __future__ import annotations

import base64
import mimetypes
import re
from functools import cache
from pathlib import Path
from typing import Any

import folium
from branca.element import Element, MacroElement
from folium.elements import JSCSSMixin
from folium.plugins import Fullscreen

__all__ = [
    "STATIC_DIR",
    "InlineAsset",
    "MeasureTool",
    "OfflineAssets",
    "OfflineFullscreen",
    "OfflineMap",
    "inline_css",
    "save_html",
]

#: Vendored npm files (``vendor/``) and GridMap's own ``gridmap.js``/``.css``.
STATIC_DIR = Path(__file__).resolve().parent / "static"

_CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)""")
_SOURCE_MAP = re.compile(r"^\s*//# sourceMappingURL=.*$", re.MULTILINE)


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".svg":
        mime = "image/svg+xml"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def inline_css(css: str, base: Path) -> str:
    """Replace every relative ``url(...)`` in ``css`` by a ``data:`` URI.

    ``data:`` and fragment URLs (``#default#VML``) are kept; a relative URL whose
    file is missing is an error, so no asset silently falls back to the network.
    """

    def repl(m: re.Match[str]) -> str:
        url = m.group(2).strip()
        if url.startswith(("data:", "#")):
            return m.group(0)
        if "://" in url or url.startswith("//"):
            raise ValueError(f"CSS in {base} refers to a remote URL: {url}")
        path = (base / url.split("?")[0].split("#")[0]).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"CSS in {base} refers to missing {url}")
        return f'url("{_data_uri(path)}")'

    return _CSS_URL.sub(repl, css)


@cache
def _asset_text(relpath: str) -> str:
    path = STATIC_DIR / relpath
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".css":
        return inline_css(text, path.parent)
    # a source-map comment would make devtools fetch a file that is not shipped;
    # "</script" inside a script would end the element early
    return _SOURCE_MAP.sub("", text).replace("</script", "<\\/script")


class InlineAsset(Element):
    """A vendored script or stylesheet rendered inline (``<script>``/``<style>``)."""

    def __init__(self, relpath: str) -> None:
        super().__init__()
        self._name = "InlineAsset"
        self.relpath = relpath

    def render(self, **kwargs: Any) -> str:
        body = _asset_text(self.relpath)
        if self.relpath.endswith(".css"):
            return f"<style>/* {self.relpath} */\n{body}</style>"
        return f"<script>/* {self.relpath} */\n{body}</script>"


class OfflineAssets(JSCSSMixin):
    """Mixin: ``default_js``/``default_css`` name files under ``maps/static`` and are
    inlined into the figure header instead of being linked from a CDN."""

    default_js: list[tuple[str, str]] = []  # noqa: RUF012 (folium declares it per instance)
    default_css: list[tuple[str, str]] = []  # noqa: RUF012 (folium declares it per instance)

    def render(self, **kwargs: Any) -> None:  # type: ignore[override]  # as JSCSSMixin
        figure: Any = self.get_root()
        for name, relpath in [*self.default_css, *self.default_js]:
            figure.header.add_child(InlineAsset(relpath), name=name)
        # skip JSCSSMixin.render, which would add <script src=...> links
        super(JSCSSMixin, self).render(**kwargs)


_LEAFLET_JS = [
    ("leaflet", "vendor/leaflet/leaflet.js"),
    ("gridmap_js", "gridmap.js"),
    ("gridmap_events_js", "gridmap-events.js"),
]
_LEAFLET_CSS = [
    ("leaflet_css", "vendor/leaflet/leaflet.css"),
    ("gridmap_css", "gridmap.css"),
]


class OfflineMap(OfflineAssets, folium.Map):
    """A :class:`folium.Map` whose Leaflet comes from ``maps/static/vendor``.

    folium's defaults (Leaflet, jQuery, Bootstrap, Font Awesome and
    awesome-markers from CDNs) are replaced by the vendored Leaflet and GridMap's
    own script and style; nothing in the page is fetched from the network
    except tiles of a configured basemap.
    """

    default_js = _LEAFLET_JS
    default_css = _LEAFLET_CSS


class OfflineFullscreen(OfflineAssets, Fullscreen):
    """folium's :class:`~folium.plugins.Fullscreen` with vendored leaflet.fullscreen."""

    default_js = [  # noqa: RUF012 (folium declares it per instance)
        ("Control.Fullscreen.js", "vendor/leaflet.fullscreen/Control.FullScreen.js")
    ]
    default_css = [  # noqa: RUF012 (folium declares it per instance)
        ("Control.FullScreen.css", "vendor/leaflet.fullscreen/Control.FullScreen.css")
    ]


class MeasureTool(OfflineAssets, MacroElement):
    """GridMap's measuring tool (``gridmap-measure.js``): distance and area by
    clicks on the map. Replaces leaflet-measure, which compiles its templates
    with ``Function`` and so needs a CSP with ``'unsafe-eval'``."""

    _template = folium.template.Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.measure({{ this._parent.get_name() }}, {{ this.options|tojson }});
        {% endmacro %}
        """
    )
    default_js = [("gridmap_measure_js", "gridmap-measure.js")]  # noqa: RUF012

    def __init__(self, position: str = "topleft") -> None:
        super().__init__()
        self._name = "MeasureTool"
        self.options = {"position": position}


class SearchControl(OfflineAssets, MacroElement):
    """leaflet-search box over GridMap's own index of grid codes and addresses."""

    _template = folium.template.Template(
        """
        {% macro script(this, kwargs) %}
            GridMap.search({{ this._parent.get_name() }}, {{ this.options|tojson }});
        {% endmacro %}
        """
    )
    default_js = [  # noqa: RUF012 (folium declares it per instance)
        ("leaflet_search_js", "vendor/leaflet-search/dist/leaflet-search.min.js")
    ]
    default_css = [  # noqa: RUF012 (folium declares it per instance)
        ("leaflet_search_css", "vendor/leaflet-search/dist/leaflet-search.min.css")
    ]

    def __init__(self, *, placeholder: str, zoom: int, position: str = "topleft"):
        super().__init__()
        self._name = "SearchControl"
        self.options = {"placeholder": placeholder, "zoom": zoom, "position": position}


def save_html(m: folium.Map, path: str | Path) -> Path:
    """Write ``m`` to ONE self-contained HTML file and return its path.

    Every script, stylesheet and image is inlined (see :class:`OfflineMap`); the
    file opens from a USB stick or an intranet share with no network. Only tiles
    of a configured basemap are requested from their server.

    Parameters
    ----------
    m
        A map from :func:`maps.coverage_map`, :func:`maps.balance_map`,
        :func:`maps.diff_map` (or any :class:`OfflineMap`).
    path
        Where to write; missing parent directories are created and an existing
        file is replaced. Written as UTF-8.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> m = OfflineMap(location=[29.0, 118.9], tiles=None)
    >>> out = save_html(m, pathlib.Path(tempfile.mkdtemp()) / "new" / "m.html")
    >>> html = out.read_text(encoding="utf-8")
    >>> "cdn.jsdelivr" in html, '<script src="http' in html, "L.map(" in html
    (False, False, True)
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(m.get_root().render(), encoding="utf-8")
    return out
