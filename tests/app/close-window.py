#!/usr/bin/python3
"""Closes the X window titled SAM the way a window manager does: a
WM_DELETE_WINDOW client message (what the title bar's close button sends),
not a destroy. Used by tests/app/e2e.mjs under Xvfb, where no window manager
runs. Exit 1 when no such window is shown."""
import sys

from Xlib import X, display, protocol

TITLE = sys.argv[1] if len(sys.argv) > 1 else "SAM"
d = display.Display()
delete = d.intern_atom("WM_DELETE_WINDOW")
protocols = d.intern_atom("WM_PROTOCOLS")


def windows(w):
    yield w
    for child in w.query_tree().children:
        yield from windows(child)


sent = 0
for w in windows(d.screen().root):
    try:
        if w.get_wm_name() != TITLE or w.get_attributes().map_state != X.IsViewable:
            continue
        if delete not in (w.get_wm_protocols() or []):
            continue
    except Exception:  # a window that went away while we looked
        continue
    w.send_event(
        protocol.event.ClientMessage(window=w, client_type=protocols, data=(32, [delete, X.CurrentTime, 0, 0, 0])),
        event_mask=X.NoEventMask,
    )
    sent += 1
d.flush()
d.close()
sys.exit(0 if sent else 1)
