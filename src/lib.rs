//! camgate: a quarantine gateway for legacy IP cameras.
//!
//! It pulls each camera's RTSP stream once and re-serves it to any number of
//! recorders, terminating the stream: frames are depacketized, then
//! packetized afresh with camgate's own SSRCs, sequence numbers, timestamps
//! and SDP.
//!
//! Module map, in the order a frame travels (`docs/architecture.md` follows
//! one hop by hop):
//! - [`camera`]: the camera side: retry loop, retina sessions (after a check of the camera's challenge), the simulated camera, clips.
//! - [`inspect`]: per-frame code: key frames, codec facts, parameter sets, sanitizing, change detection.
//! - [`media`]: stream descriptions, the publisher (camgate's RTP timeline), the fan-out hub.
//! - [`rtp`]: packetizers and RTCP sender reports, without I/O.
//! - [`recorder`]: the recorder-facing RTSP server (sessions, interleaved and UDP writers).
//!
//! Beside the data path:
//! - [`config`]: the TOML file and environment overrides, validated into a typed [`config::Config`].
//! - [`devices`]: the registry of devices and the hub of each stream.
//! - [`http`]: the camera HTTP API proxy and its policy.
//! - [`egress`]: containment of the cameras' own traffic: DNS sinkhole, trap, nftables rules.
//! - [`fingerprint`]: what each device is (evidence from its answers, the vote, the probes, its identity); [`inventory`]: the removal inventory command.
//! - [`admin`]: `/metrics`, health, JSON API, status page and the per-device view they show; [`metrics`]: Prometheus families and pre-resolved handles.
//! - [`auth`]: recorder authentication (Basic, Digest, WS-Security) for RTSP and HTTP; [`tls`]: server TLS settings.
//! - [`listener`]: the one TCP listener every server uses (accept loop, connection caps per pool and per source, deadlines).
//! - [`app`]: the composition root; [`cli`], [`telemetry`], [`summary`]: the binary's pieces.
//! - [`ratelimit`]: rate limits for log lines that could repeat; [`sys`]: process limits.
//!
//! Non-goals: recording, transcoding, RTSP 2.0, multicast, and any path by
//! which a camera's packets, SDP or credentials reach a recorder.

#![deny(unsafe_code)]
#![warn(rust_2018_idioms, clippy::unwrap_used)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod camera;
pub mod cli;
pub mod config;
pub mod devices;
pub mod egress;
pub mod fingerprint;
pub mod http;
pub mod inspect;
pub mod inventory;
pub mod listener;
pub mod media;
pub mod metrics;
pub mod ratelimit;
pub mod recorder;
pub mod rtp;
pub mod summary;
pub mod sys;
pub mod telemetry;
pub mod tls;
