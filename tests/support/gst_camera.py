#!/usr/bin/python3
"""A third-party RTSP camera for camgate's integration tests.

GStreamer's RTSP server (Debian: python3-gi, gir1.2-gst-rtsp-server-1.0)
serves an H.264 or H.265 MP4 file (audio as AAC, G.711, Opus or none) at a
Hikvision-style path with Digest (or Basic) authentication, as a camera would. Run with /usr/bin/python3 (Debian's
python3-gi only works there). Prints "READY <port>" once serving.
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--path", default="/Streaming/Channels/101")
    p.add_argument("--user", default="admin")
    p.add_argument("--password", default="cam-secret")
    p.add_argument("--auth", choices=["digest", "basic"], default="digest")
    p.add_argument("--video", choices=["h264", "h265"], default="h264")
    p.add_argument("--audio", choices=["aac", "pcmu", "pcma", "opus", "none"], default="aac")
    a = p.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))

    decoded = (
        " d.audio_0 ! queue ! aacparse ! avdec_aac ! audioconvert ! audioresample"
    )
    audio = {
        "none": "",
        "aac": " d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97",
        "pcmu": decoded + " ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1",
        "pcma": decoded + " ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1",
        "opus": decoded + " ! opusenc ! rtpopuspay name=pay1 pt=98",
    }[a.audio]
    video = (
        f"d.video_0 ! queue ! {a.video}parse ! rtp{a.video}pay name=pay0 pt=96 config-interval=-1"
    )
    launch = f"( filesrc location={a.file} ! qtdemux name=d {video}{audio} )"
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    factory.add_role_from_structure(
        Gst.Structure.from_string(
            "camera, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )[0]
    )
    server.get_mount_points().add_factory(a.path, factory)

    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "camera")
    if a.auth == "basic":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password), token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(a.user, a.password, token)
    server.set_auth(auth)

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
