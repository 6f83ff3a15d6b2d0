#!/usr/bin/python3
"""Opens URL in a plain WebKitGTK window (the engine the app's webview uses,
without Tauri), 1280x800, WebGL enabled as wry enables it. Runs until killed.

    webkit-page.py URL
"""
import sys

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("WebKit2", "4.1")
from gi.repository import Gtk, WebKit2  # noqa: E402

window = Gtk.Window(title="bench-baseline")
window.set_default_size(1280, 800)
view = WebKit2.WebView()
settings = view.get_settings()
settings.set_enable_webgl(True)
settings.set_enable_javascript(True)
window.add(view)
window.connect("destroy", Gtk.main_quit)
window.show_all()
view.load_uri(sys.argv[1])
Gtk.main()
