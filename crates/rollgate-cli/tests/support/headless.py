"""Renders a page in headless Chromium and reports what its console said.

    python3 headless.py FILE --screenshot OUT.png [--js]

Drives Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe:
requests on fd 3, answers on fd 4, each JSON message ended by a NUL byte), so
no port and no websocket library are needed. JavaScript is off unless --js.
Collects every console entry of level error or warning: uncaught exceptions
(Runtime.exceptionThrown), console.error/warn calls (Runtime.consoleAPICalled)
and the browser's own entries (Log.entryAdded: failed loads, blocked content,
security errors). Prints one JSON object on stdout:

    {"errors": [...], "dom": "<html>...</html>", "title": "..."}

and writes a full-page PNG screenshot. Exits 1 on a browser failure (not
found, crashed, timed out), naming it.
"""

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time


class Browser:
    def __init__(self, exe, js):
        self.profile = tempfile.mkdtemp(prefix="rollgate-chromium-")
        # Our ends of the two pipes, moved above the fds the child needs.
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        hi = [os.dup(fd) for fd in (to_child_r, from_child_w)]
        for fd in (to_child_r, from_child_w):
            os.close(fd)
        self.w, self.r = to_child_w, from_child_r
        args = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--hide-scrollbars",
            "--mute-audio",
            "--remote-debugging-pipe",
            f"--user-data-dir={self.profile}",
            "--window-size=1200,900",
        ]
        if not js:
            args.append("--blink-settings=scriptEnabled=false")
        args.append("about:blank")

        def fds():
            os.dup2(hi[0], 3)
            os.dup2(hi[1], 4)

        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=fds,
            pass_fds=(3, 4),
            close_fds=True,
        )
        for fd in hi:
            os.close(fd)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def read(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("no answer from chromium in time")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited (status {self.proc.poll()})")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, session=None, timeout=30):
        want = self.send(method, params, session)
        deadline = time.time() + timeout
        while True:
            msg = self.read(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method, timeout=30):
        for i, m in enumerate(self.events):
            if m.get("method") == method:
                return self.events.pop(i)
        deadline = time.time() + timeout
        while True:
            msg = self.read(deadline)
            if msg.get("method") == method:
                return msg
            self.events.append(msg)

    def drain(self, seconds):
        """Collects events for `seconds` more (late console entries)."""
        deadline = time.time() + seconds
        try:
            while True:
                self.events.append(self.read(deadline))
        except TimeoutError:
            pass

    def close(self):
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def console_errors(events):
    out = []
    for m in events:
        method, p = m.get("method"), m.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = d.get("exception", {}).get("description") or d.get("text")
            out.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            out.append(f"console.{p.get('type')}: {args}")
        elif method == "Log.entryAdded":
            e = p.get("entry", {})
            if e.get("level") in ("error", "warning"):
                out.append(f"{e.get('source')} {e.get('level')}: {e.get('text')} {e.get('url', '')}".strip())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("page")
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--js", action="store_true")
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM", "chromium"))
    a = ap.parse_args()
    exe = shutil.which(a.chromium)
    if exe is None:
        sys.exit(
            f"headless.py: {a.chromium} not found: install Debian's chromium "
            "(bash scripts/install-test-deps.sh does: apt-get install chromium)"
        )
    url = "file://" + os.path.abspath(a.page)
    b = Browser(exe, a.js)
    try:
        targets = b.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        s = b.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            b.call(f"{domain}.enable", session=s)
        b.call("Page.navigate", {"url": url}, session=s)
        b.wait_for("Page.loadEventFired")
        b.drain(0.5)
        root = b.call("DOM.getDocument", {"depth": 0}, session=s)["root"]["nodeId"]
        html = b.call("DOM.getOuterHTML", {"nodeId": root}, session=s)["outerHTML"]
        shot = b.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=s, timeout=60)
        with open(a.screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        title = b.call("Target.getTargetInfo", {"targetId": page["targetId"]})["targetInfo"].get("title", "")
        print(json.dumps({"errors": console_errors(b.events), "dom": html, "title": title}))
    except (TimeoutError, RuntimeError, StopIteration, KeyError) as e:
        sys.exit(f"headless.py: chromium failed on {url}: {e!r}")
    finally:
        b.close()


if __name__ == "__main__":
    main()
