"""``/docs``: Swagger UI from the vendored npm package, so it works with no CDN.

The assets are ``maps/static/vendor/swagger-ui`` (``swagger-ui-dist``, Apache-2.0;
see that directory's README for the version and checksum), served under
:data:`ASSETS`. ReDoc is not offered (``redoc_url=None``).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.limits import with_nonce
from maps.assets import STATIC_DIR

__all__ = ["ASSETS", "SWAGGER_DIR", "install_docs"]

#: The vendored ``swagger-ui-dist`` files.
SWAGGER_DIR = STATIC_DIR / "vendor" / "swagger-ui"
#: Where they are served.
ASSETS = "/docs/assets"


def install_docs(app: FastAPI) -> None:
    """Add ``GET /docs`` (Swagger UI, assets from :data:`ASSETS`) to ``app``."""
    app.mount(ASSETS, StaticFiles(directory=SWAGGER_DIR), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} — docs",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            # no badge from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )
        # its one inline script carries the response's CSP nonce (api.limits)
        html = bytes(page.body).decode("utf-8")
        return HTMLResponse(with_nonce(request.scope, html))
