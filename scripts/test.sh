#!/usr/bin/env bash
# Runs every camgate test on a fresh Debian/Ubuntu machine: installs the
# system packages the tests use as real peers (ffmpeg as a recorder,
# GStreamer's RTSP server as a camera), then the whole cargo test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  ffmpeg                        # ffmpeg/ffprobe: recorders in the tests, clip generation
  python3-gi                    # GStreamer's RTSP server from Python (the test camera)
  gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly
  gstreamer1.0-libav
  gstreamer1.0-tools            # gst-launch-1.0: GStreamer's rtspsrc as a recorder (tests/interop.rs)
  vlc-bin                       # VLC's own RTSP server output as a camera (tests/interop.rs)
  vlc-plugin-base
  chromium                      # headless browser test of the status page
  prometheus                    # promtool: checks and tests the shipped alert rules
  wrk                           # HTTP load generator: the API proxy benchmark (smoke-run by the tests)
  nftables                      # nft: the egress containment test applies `camgate nft` in network namespaces
  iproute2                      # ip netns, veth: the egress namespace test
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  # Keep package scripts from starting services (Prometheus's server): only
  # its promtool is wanted.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ -n "$policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
  $SUDO pkill -x prometheus 2>/dev/null || true
fi

cargo test --locked --all-targets "$@"
