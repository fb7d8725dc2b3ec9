"""`walkrun leaderboard serve`: the leaderboard pages rendered live from the results DB.

A small Starlette app under uvicorn; every request reads the DB afresh (so a running `walkrun
watch` shows up on reload). Paths are those of the static build (`index.html`,
`checkpoints/<id>.html`, `static/...`), so both share one set of relative links.

    walkrun leaderboard serve                      # http://127.0.0.1:8000, WALKRUN_DB
    walkrun leaderboard serve --port 8080 --db postgresql+psycopg://u:p@host/walkrun
"""

from __future__ import annotations

from dataclasses import dataclass, field

from walkrun.leaderboard import assets, checkpoint_page, data, pages
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

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.port <= 65535:
            raise WalkrunError(f"--port must be between 0 and 65535, got {self.port}")


def create_app(cfg: LiveConfig):
    """The Starlette app for `cfg` (checks the database is readable first)."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse
    from starlette.routing import Route

    source = data.Source(cfg.db)
    source.check()
    files = assets.static_files()

    def html(text: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(text, status_code=status, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})

    def index(request):
        return html(
            pages.render_index(
                rows := source.rows(), source.db_label, source.stage_diffs(rows), source.trajectories(rows)
            )
        )

    def checkpoint(request):
        text = checkpoint_page.render_checkpoint_data(
            source.checkpoint_data(request.path_params["cid"]), cfg.options, source.db_label
        )
        if text is None:
            return html(
                pages.render_not_found(
                    f"No checkpoint with id {request.path_params['cid']} has evaluations in this database."
                ),
                404,
            )
        return html(text)

    def ablation_page(request):
        from walkrun.leaderboard import ablation

        return html(ablation.render_ablation(ablation.ablation_groups(cfg.db), source.db_label))

    def static(request):
        path = files.get(request.path_params["name"])
        if path is None:
            return PlainTextResponse("not found", status_code=404, headers=SECURITY_HEADERS)
        return FileResponse(path, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=3600"})

    def health(request):
        return PlainTextResponse("ok")

    routes = [
        Route("/", lambda request: RedirectResponse("/index.html", status_code=307)),
        Route("/index.html", index),
        Route("/checkpoints/{cid:int}.html", checkpoint),
        Route("/ablation.html", ablation_page),
        Route("/static/{name:str}", static),
        Route("/healthz", health),
    ]
    return Starlette(routes=routes)


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
