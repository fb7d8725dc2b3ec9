"""The leaderboard as the tests see it: `walkrun leaderboard serve` in a subprocess, and the
results table read back from the HTML."""

from __future__ import annotations


class Server:
    """`walkrun leaderboard serve` in a subprocess on a free port of 127.0.0.1."""

    def __init__(self, url_db: str, *extra: str):
        import subprocess
        import sys
        import threading

        # `python -m walkrun.cli` is the `walkrun` command (its entry point) without relying on
        # the venv's generated console script.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "walkrun.cli", "leaderboard", "serve", "--port", "0", "--db", url_db, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.lines.append(line)
                if line.startswith("walkrun leaderboard: http://"):
                    self.url = line.split()[2]
                    self.ready.set()
            self.ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not self.ready.wait(60) or not hasattr(self, "url"):
            self.stop()
            raise RuntimeError("leaderboard server did not start:\n" + "".join(self.lines))
        self.wait_healthy()

    def wait_healthy(self) -> None:
        import time
        import urllib.request

        for _ in range(100):
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=5) as r:
                    if r.read() == b"ok":
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("leaderboard server never answered /healthz:\n" + "".join(self.lines))

    def get(self, path: str) -> tuple[int, dict, str]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)


def parse_table(html: str, table_id: str) -> list[dict]:
    """Rows of the results table `table_id` (laid out or in its <template>): the <tr> data
    attributes plus, per cell,
    "<key>" -> data-v (the exact value) and "<key>.text" -> the text shown."""
    from html.parser import HTMLParser

    class P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside, self.rows, self.cell, self.depth = False, [], None, 0

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            # The rows past the first page wait in <template id="<table_id>-rest">.
            if tag in ("table", "template") and a.get("id") in (table_id, table_id + "-rest"):
                self.inside = True
            elif self.inside and tag == "tr" and "data-checkpoint-id" in a:
                self.rows.append({k: v for k, v in a.items() if k.startswith("data-")})
            elif self.inside and tag == "td" and self.rows:
                self.cell = a["data-key"]
                self.rows[-1][self.cell] = a.get("data-v")
                self.rows[-1][self.cell + ".text"] = ""

        def handle_endtag(self, tag):
            if tag == "td":
                self.cell = None
            elif tag in ("table", "template") and self.inside:
                self.inside = False

        def handle_data(self, d):
            if self.cell is not None:
                self.rows[-1][self.cell + ".text"] += d

    p = P()
    p.feed(html)
    for r in p.rows:
        for k in [k for k in r if k.endswith(".text")]:
            r[k] = r[k].strip()
    return p.rows
