#!/usr/bin/python3
"""A live encoding camera for camgate's interoperability tests.

GStreamer's RTSP server (Debian: python3-gi, gir1.2-gst-rtsp-server-1.0)
serves a live test pattern encoded as a real encoder does by default, with
no authentication:

  h265       x265, its default open GOP: an IDR only when the encoder
             starts, then CRA pictures followed by RASL pictures
  h264-open  x264 with open-gop=1: one IDR, then I pictures with a recovery
             point SEI followed by leading B pictures
  h264       x264's default closed GOP (an IDR every GOP)

One GOP per second (25 frames at 25 fps), B-frames on. Run with
/usr/bin/python3 (Debian's python3-gi only works there). Prints
"READY <port>" once serving.
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ENCODERS = {
    "h265": (
        "x265enc speed-preset=superfast "
        'option-string="keyint=25:bframes=4:b-adapt=2:open-gop=1"',
        "h265",
    ),
    "h264-open": (
        "x264enc key-int-max=25 speed-preset=superfast bframes=3 b-adapt=false "
        'option-string="open-gop=1:scenecut=0"',
        "h264",
    ),
    "h264": (
        "x264enc key-int-max=25 speed-preset=superfast bframes=3 b-adapt=false "
        'option-string="scenecut=0"',
        "h264",
    ),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/Streaming/Channels/101")
    p.add_argument("--codec", choices=sorted(ENCODERS), required=True)
    a = p.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    enc, name = ENCODERS[a.codec]
    launch = (
        "( videotestsrc is-live=true pattern=ball "
        "! video/x-raw,format=I420,width=320,height=240,framerate=25/1 "
        f"! {enc} ! {name}parse ! rtp{name}pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    # One encoder for every client, as a camera has: a client joins the
    # encoder's stream wherever it is.
    factory.set_shared(True)
    server.get_mount_points().add_factory(a.path, factory)
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
