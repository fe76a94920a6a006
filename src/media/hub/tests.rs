use super::*;

fn limits() -> HubLimits {
    HubLimits {
        queue_bytes: 1000,
        max_lag: Duration::from_secs(10),
        gop_cache_max_bytes: 10_000,
    }
}

fn frame(kind: FrameKind, len: usize) -> OutFrame {
    OutFrame {
        track: 0,
        kind,
        data: Bytes::from(vec![0u8; len]),
        at: Instant::now(),
        rtp: None,
    }
}

fn kinds(v: &[Arc<Node>]) -> Vec<FrameKind> {
    v.iter().map(|n| n.frame().unwrap().kind).collect()
}

fn hub(queue_bytes: u64, gop_cache_max_bytes: u64) -> Hub {
    Hub::new(HubLimits {
        queue_bytes,
        max_lag: Duration::from_secs(10),
        gop_cache_max_bytes,
    })
}

#[tokio::test(start_paused = true)]
async fn new_subscriber_starts_at_latest_key_frame() {
    let hub = Hub::new(limits());
    hub.publish(frame(FrameKind::Key, 10));
    hub.publish(frame(FrameKind::Delta, 10));
    hub.publish(frame(FrameKind::Key, 20));
    hub.publish(frame(FrameKind::Audio, 5));
    hub.publish(frame(FrameKind::Delta, 10));
    let mut s = hub.subscribe();
    assert_eq!(hub.subscriber_count(), 1);
    let mut out = Vec::new();
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    assert_eq!(
        kinds(&out),
        [FrameKind::Key, FrameKind::Audio, FrameKind::Delta]
    );
    assert_eq!(out[0].frame().unwrap().data.len(), 20);
    drop(s);
    assert_eq!(hub.subscriber_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn without_cache_waits_for_key_frame() {
    let hub = Hub::new(limits());
    hub.publish(frame(FrameKind::Delta, 10));
    let mut s = hub.subscribe();
    hub.publish(frame(FrameKind::Delta, 10));
    hub.publish(frame(FrameKind::Audio, 10));
    hub.publish(frame(FrameKind::Key, 10));
    let mut out = Vec::new();
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    assert_eq!(kinds(&out), [FrameKind::Key]);
    assert_eq!(s.take_dropped(), 0, "joining frames are not drops");
}

#[tokio::test(start_paused = true)]
async fn waits_and_wakes_on_publish() {
    let hub = Hub::new(limits());
    hub.publish(frame(FrameKind::Key, 10));
    let mut s = hub.subscribe();
    let mut out = Vec::new();
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    out.clear();
    let h2 = hub.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(40)).await;
        h2.publish(frame(FrameKind::Delta, 10));
    });
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    assert_eq!(kinds(&out), [FrameKind::Delta]);
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn batch_respects_max_bytes_but_returns_one() {
    let hub = Hub::new(limits());
    hub.publish(frame(FrameKind::Key, 100));
    hub.publish(frame(FrameKind::Delta, 100));
    hub.publish(frame(FrameKind::Delta, 100));
    let mut s = hub.subscribe();
    let mut out = Vec::new();
    s.next_batch(&mut out, 50).await.unwrap();
    assert_eq!(out.len(), 1);
    out.clear();
    s.next_batch(&mut out, 150).await.unwrap();
    assert_eq!(out.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn lagging_subscriber_skips_to_latest_key_and_counts() {
    let hub = Hub::new(limits());
    hub.publish(frame(FrameKind::Key, 100));
    let mut s = hub.subscribe();
    for _ in 0..20 {
        hub.publish(frame(FrameKind::Delta, 100));
    }
    hub.publish(frame(FrameKind::Key, 100));
    hub.publish(frame(FrameKind::Delta, 100));
    let mut out = Vec::new();
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    assert_eq!(kinds(&out), [FrameKind::Key, FrameKind::Delta]);
    // The first key frame and 20 deltas were skipped.
    assert_eq!(s.take_dropped(), 21);
    assert_eq!(s.take_dropped(), 0);
}

#[tokio::test(start_paused = true)]
async fn lagging_without_key_waits_for_next_key() {
    let hub = Hub::new(HubLimits {
        gop_cache_max_bytes: 1 << 20,
        ..limits()
    });
    hub.publish(frame(FrameKind::Key, 100));
    let mut s = hub.subscribe();
    let mut out = Vec::new();
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    out.clear();
    for _ in 0..20 {
        hub.publish(frame(FrameKind::Delta, 100));
    }
    // Behind by 2000 bytes, and the cached key frame is behind it: it
    // resumes at the next key frame.
    hub.publish(frame(FrameKind::Key, 10));
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    assert_eq!(kinds(&out), [FrameKind::Key]);
    assert_eq!(s.take_dropped(), 20);
}

#[tokio::test(start_paused = true)]
async fn stale_subscriber_is_ended() {
    let hub = Hub::new(limits());
    hub.publish(frame(FrameKind::Key, 10));
    let mut s = hub.subscribe();
    tokio::time::advance(Duration::from_secs(11)).await;
    let mut out = Vec::new();
    assert_eq!(
        s.next_batch(&mut out, usize::MAX).await,
        Err(SubscriberEnd::TooSlow)
    );
}

#[tokio::test(start_paused = true)]
async fn end_marker_ends_subscribers_and_clears_cache() {
    let hub = Hub::new(limits());
    hub.publish(frame(FrameKind::Key, 10));
    let mut s = hub.subscribe();
    hub.end_subscribers();
    let mut out = Vec::new();
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    out.clear();
    assert_eq!(
        s.next_batch(&mut out, usize::MAX).await,
        Err(SubscriberEnd::StreamEnded)
    );
    // A new subscriber does not see the old GOP or the marker.
    let mut s2 = hub.subscribe();
    hub.publish(frame(FrameKind::Key, 10));
    s2.next_batch(&mut out, usize::MAX).await.unwrap();
    assert_eq!(kinds(&out), [FrameKind::Key]);
}

#[tokio::test(start_paused = true)]
async fn gop_cache_is_capped() {
    let hub = Hub::new(HubLimits {
        gop_cache_max_bytes: 250,
        ..limits()
    });
    hub.publish(frame(FrameKind::Key, 100));
    hub.publish(frame(FrameKind::Delta, 100));
    hub.publish(frame(FrameKind::Delta, 100));
    let mut s = hub.subscribe();
    hub.publish(frame(FrameKind::Delta, 1));
    hub.publish(frame(FrameKind::Key, 2));
    let mut out = Vec::new();
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    assert_eq!(kinds(&out), [FrameKind::Key]);
}

#[tokio::test]
async fn long_chain_drops_without_stack_overflow() {
    let hub = Hub::new(HubLimits {
        queue_bytes: u64::MAX,
        ..limits()
    });
    hub.publish(frame(FrameKind::Key, 0));
    let s = hub.subscribe();
    for _ in 0..300_000 {
        hub.publish(frame(FrameKind::Delta, 0));
    }
    drop(s);
    hub.publish(frame(FrameKind::Key, 0));
}

#[tokio::test(start_paused = true)]
async fn demand_and_info() {
    let hub = Hub::new(limits());
    let rx = hub.watch_demand();
    let g1 = hub.demand();
    let g2 = hub.demand();
    assert_eq!(*rx.borrow(), 2);
    drop(g1);
    drop(g2);
    assert_eq!(*rx.borrow(), 0);
    assert!(hub.wait_info(Duration::from_millis(10)).await.is_none());
    let h2 = hub.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        h2.set_info(Arc::new(StreamInfo { tracks: vec![] }));
    });
    assert!(hub.wait_info(Duration::from_secs(1)).await.is_some());
}

#[tokio::test(start_paused = true)]
async fn cleared_cache_makes_new_subscribers_wait_for_fresh_key() {
    let hub = Hub::new(limits());
    hub.publish(frame(FrameKind::Key, 10));
    hub.clear_cache();
    tokio::time::advance(Duration::from_secs(60)).await;
    let mut s = hub.subscribe();
    hub.publish(frame(FrameKind::Delta, 10));
    hub.publish(frame(FrameKind::Key, 10));
    let mut out = Vec::new();
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    assert_eq!(kinds(&out), [FrameKind::Key]);
}

#[tokio::test(start_paused = true)]
async fn start_clock_extrapolates_from_the_last_frame() {
    let hub = Hub::new(limits());
    assert_eq!(hub.subscribe().start_clock(1), None);
    let mut f = frame(FrameKind::Metadata, 10);
    f.track = 1;
    hub.publish_media(f, 501, 90_000, 90_000);
    let s = hub.subscribe();
    assert_eq!(s.start_clock(0), None, "track 0 sent nothing");
    tokio::time::advance(Duration::from_millis(500)).await;
    let (seq, ts) = s.start_clock(1).unwrap();
    assert_eq!(seq, 501);
    assert!((135_000..=135_100).contains(&ts), "{ts}");
}

#[tokio::test(start_paused = true)]
async fn start_clock_is_taken_with_the_cursor() {
    let hub = Hub::new(limits());
    hub.publish(frame(FrameKind::Key, 10));
    let mut f = frame(FrameKind::Metadata, 10);
    f.track = 1;
    hub.publish_media(f.clone(), 10, 1000, 90_000);
    let s = hub.subscribe();
    // A frame published after the subscriber started is one it will send:
    // its clock must not move the start past it.
    hub.publish_media(f, 11, 2000, 90_000);
    assert_eq!(s.start_clock(1).map(|c| c.0), Some(10));
    let first: Vec<_> = s.peek().map(|f| f.track).collect();
    assert_eq!(first, [0, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn end_of_session_forgets_the_clocks() {
    let hub = Hub::new(limits());
    let mut f = frame(FrameKind::Metadata, 10);
    f.track = 1;
    hub.publish_media(f, 10, 1000, 90_000);
    hub.end_subscribers();
    assert_eq!(hub.subscribe().start_clock(1), None);
}

#[tokio::test(start_paused = true)]
async fn peek_matches_what_next_batch_sends() {
    let hub = Hub::new(limits());
    let mut s = hub.subscribe();
    hub.publish(frame(FrameKind::Delta, 1));
    hub.publish(frame(FrameKind::Audio, 2));
    hub.publish(frame(FrameKind::Key, 3));
    hub.publish(frame(FrameKind::Audio, 4));
    hub.end_subscribers();
    hub.publish(frame(FrameKind::Key, 5));
    let peeked: Vec<usize> = s.peek().map(|f| f.data.len()).collect();
    assert_eq!(peeked, [3, 4], "skips to the key frame, stops at the end");
    let mut out = Vec::new();
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    let sent: Vec<usize> = out.iter().map(|n| n.frame().unwrap().data.len()).collect();
    assert_eq!(sent, peeked);
}

#[tokio::test]
async fn a_joiner_at_a_key_frame_skips_its_leading_pictures_others_keep_them() {
    let hub = hub(1 << 20, 1 << 20);
    let mut early = hub.subscribe();
    hub.publish(frame(FrameKind::Key, 10));
    hub.publish(frame(FrameKind::Delta, 10));
    hub.publish(frame(FrameKind::Key, 10));
    let mut late = hub.subscribe();
    hub.publish(frame(FrameKind::Leading, 10));
    hub.publish(frame(FrameKind::Leading, 10));
    hub.publish(frame(FrameKind::Delta, 10));
    hub.publish(frame(FrameKind::Leading, 10));
    let late_kinds: Vec<FrameKind> = late.peek().map(|f| f.kind).collect();
    let mut out = Vec::new();
    late.next_batch(&mut out, usize::MAX).await.unwrap();
    assert_eq!(
        kinds(&out),
        [FrameKind::Key, FrameKind::Delta, FrameKind::Leading],
        "leading pictures after the join point are skipped until a trailing one"
    );
    assert_eq!(late_kinds, kinds(&out), "peek agrees with delivery");
    out.clear();
    early.next_batch(&mut out, usize::MAX).await.unwrap();
    assert_eq!(
        out.len(),
        7,
        "a recorder already playing gets every picture"
    );
}

#[tokio::test]
async fn decodable_leading_pictures_reach_joiners_and_do_not_end_the_leading_ones() {
    let hub = hub(1 << 20, 1 << 20);
    hub.publish(frame(FrameKind::Key, 10));
    let mut s = hub.subscribe();
    for k in [
        FrameKind::DecodableLeading,
        FrameKind::Leading,
        FrameKind::DecodableLeading,
        FrameKind::Delta,
    ] {
        hub.publish(frame(k, 10));
    }
    let mut out = Vec::new();
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    assert_eq!(
        kinds(&out),
        [
            FrameKind::Key,
            FrameKind::DecodableLeading,
            FrameKind::DecodableLeading,
            FrameKind::Delta
        ]
    );
}

#[tokio::test]
async fn a_key_frame_over_the_cache_limit_is_not_cached() {
    let hub = hub(1 << 20, 100);
    hub.publish(frame(FrameKind::Key, 50));
    hub.publish(frame(FrameKind::Key, 500));
    let mut s = hub.subscribe();
    hub.publish(frame(FrameKind::Delta, 10));
    hub.publish(frame(FrameKind::Key, 60));
    let mut out = Vec::new();
    s.next_batch(&mut out, usize::MAX).await.unwrap();
    assert_eq!(kinds(&out), [FrameKind::Key]);
    assert_eq!(out[0].frame().map(|f| f.data.len()), Some(60));
}

#[tokio::test(start_paused = true)]
async fn a_joiner_of_a_stalled_stream_waits_for_the_next_key_frame() {
    let hub = hub(1 << 20, 1 << 20);
    hub.publish(frame(FrameKind::Key, 10));
    hub.publish(frame(FrameKind::Delta, 10));
    // The camera stalls for longer than the lag limit.
    tokio::time::advance(Duration::from_secs(60)).await;
    let mut s = hub.subscribe();
    hub.publish(frame(FrameKind::Delta, 10));
    hub.publish(frame(FrameKind::Key, 20));
    let mut out = Vec::new();
    s.next_batch(&mut out, usize::MAX)
        .await
        .expect("not ended as too slow");
    assert_eq!(kinds(&out), [FrameKind::Key]);
}
