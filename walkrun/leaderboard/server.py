"""`walkrun leaderboard serve`: the leaderboard pages rendered live from the results DB.

A small Starlette app under uvicorn. Pages are rendered from the DB and kept in memory until the
DB changes (checked every --refresh seconds, so a running `walkrun watch` shows up on reload);
the aggregates come from the evaluations' stored summaries. Paths are those of the static build
(`index.html`, `analysis.html`, `checkpoints/<id>.html`, `runs/<id>.html`, `compare/<a>-<b>.html`,
`static/...`), so both share one set of relative links; the live server renders the comparison of
any two checkpoints.
Every response carries the security headers below; unknown paths are a plain 404.

    walkrun leaderboard serve                      # http://127.0.0.1:8000, WALKRUN_DB
    walkrun leaderboard serve --port 8080 --db postgresql+psycopg://u:p@host/walkrun
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field

from walkrun.leaderboard import ablation, assets, cache, checkpoint_page, compare_page, data, pages, run_page
from walkrun.leaderboard.analysis import render_analysis as render_analysis_page
from walkrun.leaderboard.data import SiteOptions
from walkrun.settings import WalkrunError

SECURITY_HEADERS = {
    # Same policy as the pages' <meta> tag, plus what only a header can say.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "no-referrer",
}


@dataclass
class LiveConfig(SiteOptions):
    """Settings of `walkrun leaderboard serve`."""

    host: str = field(
        default="127.0.0.1",
        metadata={"help": "address to bind; the default keeps the page on this machine (use 0.0.0.0 deliberately)"},
    )
    port: int = field(default=8000, metadata={"help": "TCP port (0 = any free port; the URL is printed)"})
    refresh: float = field(
        default=1.0,
        metadata={
            "help": "seconds between checks of the DB for changes; pages are served from memory in between "
            "(0 = render every request afresh)"
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.port <= 65535:
            raise WalkrunError(f"--port must be between 0 and 65535, got {self.port}")
        if not self.refresh >= 0:
            raise WalkrunError(f"--refresh must be a number of seconds >= 0, got {self.refresh}")


class SecurityHeaders:
    """ASGI middleware: SECURITY_HEADERS on every HTTP response (pages, files, redirects, 404s)."""

    def __init__(self, app):
        self.app = app
        self.raw = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k for k, _ in self.raw}
                message["headers"] = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] += self.raw
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(cfg: LiveConfig):
    """The Starlette app for `cfg` (checks the database is readable first)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    source = data.Source(cfg.db)
    source.check()
    source.backfill()
    files = assets.static_files()
    pages_cache = cache.PageCache(source.version, cfg.refresh)

    def page(status: int, text: str) -> tuple[int, bytes, bytes | None]:
        # Compressed once per rendering, not per request: at 1,000 checkpoints index.html is
        # megabytes of table and plot data, a tenth of that gzipped.
        body = text.encode()
        return status, body, gzip.compress(body, compresslevel=6, mtime=0) if len(body) > 2048 else None

    def html(request, rendered: tuple[int, bytes, bytes | None]) -> Response:
        status, body, zipped = rendered
        headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
        if zipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            body, headers["Content-Encoding"] = zipped, "gzip"
        return Response(body, status_code=status, media_type="text/html", headers=headers)

    def all_rows():
        # shared by every page (read-only); never older than the page being rendered
        return pages_cache.get("rows", source.rows, stale_ok=False)

    def render_index():
        rows = all_rows()
        return page(
            200,
            pages.render_index(
                rows, source.db_label, source.stage_diffs(rows), source.trajectories(rows), source.run_links(rows)
            ),
        )

    def render_checkpoint(cid: int):
        # with the cache, all rows are read once for every page; without, only this checkpoint's
        rows = all_rows() if cfg.refresh > 0 else None
        found = source.checkpoint_data(cid, rows=rows, opts=cfg.options)
        # the page links its own run's page: its own rows are enough to know the run has one
        links = source.run_links(rows if rows is not None else (found[1] if found else []))
        text = checkpoint_page.render_checkpoint_data(found, source.db_label, links)
        if text is None:
            return page(404, pages.render_not_found(f"No checkpoint with id {cid} has evaluations in this database."))
        return page(200, text)

    def render_compare(a: int, b: int):
        text = compare_page.render_compare(source.compare_data(a, b, cfg.options), source.db_label)
        if text is None:
            return page(404, pages.render_not_found(f"Checkpoints {a} and {b} share no finished evaluation."))
        return page(200, text)

    def render_analysis():
        return page(200, render_analysis_page(source.analysis(all_rows())))

    def render_run(rid: int):
        found = source.run_pages(all_rows(), run_ids=[rid]).get(rid)
        if found is None:
            return page(
                404, pages.render_not_found(f"No training run with id {rid} has training metrics or evaluations.")
            )
        return page(200, run_page.render_run(found, source.db_label))

    def render_ablation():
        return page(200, ablation.render_ablation(source.ablation_groups(), source.db_label))

    async def cached(request, key, render) -> Response:
        # A page in memory is answered on the event loop (no thread hand-off: 20 clients cost
        # 20 small tasks, not 20 threads taking turns); rendering goes to the thread pool.
        hit = pages_cache.peek(key)
        return html(request, hit if hit is not None else await run_in_threadpool(pages_cache.get, key, render))

    async def index(request):
        return await cached(request, "index", render_index)

    async def checkpoint(request):
        cid = request.path_params["cid"]
        return await cached(request, ("checkpoint", cid), lambda: render_checkpoint(cid))

    async def compare(request):
        a, b = request.path_params["a"], request.path_params["b"]
        return await cached(request, ("compare", a, b), lambda: render_compare(a, b))

    async def analysis_page(request):
        return await cached(request, "analysis", render_analysis)

    async def run(request):
        rid = request.path_params["rid"]
        return await cached(request, ("run", rid), lambda: render_run(rid))

    async def ablation_page(request):
        return await cached(request, "ablation", render_ablation)

    def static(request):
        path = files.get(request.path_params["name"])  # only our own files, by exact name
        if path is None:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path, headers={"Cache-Control": "max-age=3600"})

    def health(request):
        return PlainTextResponse("ok")

    pages_cache.warm("index", render_index)
    routes = [
        Route("/", lambda request: RedirectResponse("/index.html", status_code=307)),
        Route("/index.html", index),
        Route("/checkpoints/{cid:int}.html", checkpoint),
        Route("/compare/{a:int}-{b:int}.html", compare),
        Route("/runs/{rid:int}.html", run),
        Route("/ablation.html", ablation_page),
        Route("/analysis.html", analysis_page),
        Route("/static/{name:str}", static),
        Route("/healthz", health),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])


def serve(cfg: LiveConfig) -> None:
    """Run the server until interrupted (Ctrl-C or SIGTERM)."""
    import socket

    import uvicorn

    app = create_app(cfg)
    # Bind the socket ourselves: a taken port becomes one clear error (uvicorn would log and
    # exit), and --port 0 can report the port the OS picked.
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
        sock.listen(2048)  # connections queue from now on, so the printed URL works at once
    except OSError as e:
        sock.close()
        raise WalkrunError(
            f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}; pick another --port (or --host)"
        ) from e
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"walkrun leaderboard: http://{shown}:{port}/ (database {data.label(cfg.db)}; Ctrl-C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
