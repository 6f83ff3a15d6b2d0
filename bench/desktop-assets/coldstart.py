#!/usr/bin/python3
"""One start of the SAM window, timed from the outside through the X server.

    coldstart.py APP [TIMEOUT_SECONDS]

Starts APP (with this process's environment), then polls the X server every
few milliseconds: `mapped` is when a viewable top-level window titled SAM
exists, `painted` is when that window's pixels are no longer one colour (rows
sampled across it: the sidebar and the main area differ as soon as the page
has been laid out and drawn; a blank or single-colour window does not count).
Both are seconds since just before the exec. Then it ends the app (SIGTERM,
SIGKILL after 5 s) and waits for the processes it had started (WebKit's).

Prints one JSON object: {"mapped": s, "painted": s, "pid": n}, or with
"error" when the window did not paint in time (exit 1).
"""
import json
import os
import signal
import subprocess
import sys
import time

from Xlib import X, display
from Xlib.error import XError

APP = sys.argv[1]
TIMEOUT = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
POLL = 0.005
ROWS = (0.12, 0.3, 0.5, 0.7, 0.88)

d = display.Display()
root = d.screen().root


def window():
    """The viewable top-level window titled SAM (no window manager: root's children)."""
    for w in root.query_tree().children:
        try:
            if w.get_attributes().map_state != X.IsViewable:
                continue
            if w.get_wm_name() == "SAM":
                return w
        except XError:  # went away while we looked
            continue
    return None


def painted(w):
    g = w.get_geometry()
    for frac in ROWS:
        row = w.get_image(0, int(g.height * frac), g.width, 1, X.ZPixmap, 0xFFFFFFFF).data
        if row != row[:4] * (len(row) // 4):
            return True
    return False


def descendants(pid):
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def end(proc):
    kids = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for k in kids:
        if alive(k):
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass


result = {}
t0 = time.monotonic()
proc = subprocess.Popen([APP], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
result["pid"] = proc.pid
try:
    w = None
    while True:
        now = time.monotonic() - t0
        if now > TIMEOUT:
            result["error"] = "the window was not mapped" if w is None else "the window did not paint"
            break
        if proc.poll() is not None:
            result["error"] = f"the app exited with status {proc.returncode}"
            break
        try:
            if w is None:
                w = window()
                if w is not None:
                    result["mapped"] = round(time.monotonic() - t0, 4)
            if w is not None and painted(w):
                result["painted"] = round(time.monotonic() - t0, 4)
                break
        except XError:
            w = None
        time.sleep(POLL)
finally:
    end(proc)
print(json.dumps(result))
sys.exit(1 if "error" in result else 0)
