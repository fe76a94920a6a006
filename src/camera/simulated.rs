//! The built-in simulated camera: loops the bundled clip at real-time pace
//! with continuous timestamps, through the same publisher, packetizers and
//! server as a real camera.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use super::clip::{self, Clip};
use super::{ErrorKind, SENDER_REPORT_INTERVAL, SourceError};
use crate::config::AudioPolicy;
use crate::media::hub::SourceState;
use crate::media::publisher::Publisher;
use crate::media::{SourceFrame, StreamInfo, Track};

/// Plays the clip until `idle` resolves (on-demand with no recorder left).
pub async fn run_session(
    publisher: &mut Publisher,
    clip: Option<Arc<Clip>>,
    audio: AudioPolicy,
    idle: impl Future<Output = ()>,
) -> Result<(), SourceError> {
    let clip = match clip {
        Some(c) => c,
        None => clip::builtin()
            .map_err(|e| SourceError::new(ErrorKind::Protocol, format!("bundled clip: {e}")))?,
    };
    let mut tracks = vec![Track::Video(clip.video.clone())];
    let audio = match (&clip.audio, audio) {
        (Some((codec, frames)), AudioPolicy::Pass) if !frames.is_empty() => {
            tracks.push(Track::Audio(codec.clone()));
            Some((codec.sample_rate(), frames))
        }
        _ => None,
    };
    publisher.begin_session(StreamInfo { tracks });
    publisher.set_state(SourceState::Live);

    let start = Instant::now();
    let video_step = 1.0 / f64::from(clip.fps);
    let video_pts_step = i64::from(90_000 / clip.fps);
    let mut video_i: u64 = 0;
    let mut audio_i: u64 = 0;
    let mut reports =
        tokio::time::interval_at(start + SENDER_REPORT_INTERVAL, SENDER_REPORT_INTERVAL);
    tokio::pin!(idle);
    loop {
        let t_video = video_i as f64 * video_step;
        let t_audio = audio
            .map(|(rate, _)| audio_i as f64 * 1024.0 / f64::from(rate))
            .unwrap_or(f64::INFINITY);
        let due = start + Duration::from_secs_f64(t_video.min(t_audio));
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = reports.tick() => {
                publisher.send_reports();
                continue;
            }
            _ = &mut idle => return Ok(()),
        }
        let frame = if t_video <= t_audio {
            let index = (video_i % clip.frames.len() as u64) as usize;
            // A clip that switches parameter sets (another resolution)
            // announces them before the frame that uses them.
            if let Ok(at) = clip.changes.binary_search_by_key(&index, |(i, _)| *i) {
                publisher.update_video(0, clip.changes[at].1.clone());
            }
            let (data, key) = &clip.frames[index];
            let f = SourceFrame {
                track: 0,
                pts: video_i as i64 * video_pts_step,
                key: *key,
                data: data.clone(),
            };
            video_i += 1;
            f
        } else {
            let frames = audio
                .map(|(_, f)| f)
                .expect("audio is due only when present");
            let f = SourceFrame {
                track: 1,
                pts: audio_i as i64 * 1024,
                key: false,
                data: frames[(audio_i % frames.len() as u64) as usize].clone(),
            };
            audio_i += 1;
            f
        };
        if let Err(skip) = publisher.push(&frame) {
            // A malformed clip (given with `clip`) would repeat every loop.
            static SKIP: crate::ratelimit::LogLimiter = crate::ratelimit::LogLimiter::new(10);
            if let Some(suppressed) = SKIP.allow() {
                warn!(?skip, suppressed, "simulated camera frame not published");
            }
        }
    }
}
