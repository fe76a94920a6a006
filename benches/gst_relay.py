#!/usr/bin/python3
"""The relay people build today from Debian packages, for camgate's benchmark.

GStreamer's RTSP server with one shared media per camera:
`rtspsrc ! rtph264depay ! rtph264pay` (gir1.2-gst-rtsp-server-1.0 with
python3-gi; run with /usr/bin/python3). Mounts /cam<i>/main for i in
0..count, each pulling --camera (a format string with {i}) over TCP.
Prints "READY <port>" once serving.
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--camera", required=True, help="e.g. rtsp://u:p@127.0.0.1:8554/cam{i}/main")
    p.add_argument("--count", type=int, default=1)
    a = p.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    # Session pools default to 60 s timeouts; allow many clients.
    server.get_session_pool().set_max_sessions(0)
    mounts = server.get_mount_points()
    for i in range(a.count):
        url = a.camera.format(i=i)
        launch = (
            f"( rtspsrc location={url} protocols=tcp latency=0 ! rtph264depay "
            f"! rtph264pay name=pay0 pt=96 config-interval=-1 mtu=1400 )"
        )
        f = GstRtspServer.RTSPMediaFactory()
        f.set_launch(launch)
        f.set_shared(True)
        f.set_latency(0)
        mounts.add_factory(f"/cam{i}/main", f)
    if server.attach(None) == 0:
        print("FAILED to bind", flush=True)
        sys.exit(1)
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {a.port}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
