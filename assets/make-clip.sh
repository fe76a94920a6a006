#!/usr/bin/env bash
# Makes the simulated camera's bundled clip (embedded in the binary):
#   clip.h264  H.264 Main, 1280x720, 25 fps, 2 s GOP (keyint 50), ~4 Mbit/s,
#              no B-frames (like most IP cameras), Annex B with access unit
#              delimiters, x264's settings SEI left in (the inspection issue
#              relies on it)
#   clip.aac   AAC-LC 32 kHz mono in ADTS
# Both last exactly 4 s (100 video frames, 125 AAC frames of 1024 samples),
# so the loop stays in sync. Run once; the outputs are committed.
set -euo pipefail
cd "$(dirname "$0")"
ffmpeg -v error -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=25,noise=alls=12:allf=t+u" \
  -t 4 -c:v libx264 -profile:v main -preset medium -tune zerolatency \
  -b:v 4M -maxrate 4M -bufsize 4M -g 50 -keyint_min 50 -bf 0 \
  -x264-params "aud=1:scenecut=0:rc-lookahead=0" \
  -pix_fmt yuv420p -f h264 clip.h264
ffmpeg -v error -y \
  -f lavfi -i "sine=frequency=1000:sample_rate=32000" \
  -t 4 -c:a aac -b:a 48k -ac 1 -f adts clip.aac
ls -l clip.h264 clip.aac
