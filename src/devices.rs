//! The device registry: every configured device and the hub of each of its
//! streams, looked up by the names in recorder-facing URLs.
//!
//! Built once from the config at start; the source tasks write to the hubs,
//! the RTSP server reads from them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Device};
use crate::media::hub::{Hub, HubLimits};

/// One stream of a device.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    pub name: Arc<str>,
    pub hub: Hub,
}

/// One device and its streams.
#[derive(Debug, Clone)]
pub struct DeviceEntry {
    pub config: Arc<Device>,
    pub streams: Vec<StreamEntry>,
}

impl DeviceEntry {
    pub fn stream(&self, name: &str) -> Option<&StreamEntry> {
        self.streams.iter().find(|s| &*s.name == name)
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Registry {
    devices: Vec<DeviceEntry>,
    by_id: HashMap<String, usize>,
}

impl Registry {
    /// Creates a hub for every configured device stream.
    pub fn new(config: &Config) -> Registry {
        let limits = HubLimits {
            queue_bytes: config.rtsp.recorder_queue_bytes,
            max_lag: Duration::from_secs(config.rtsp.recorder_max_lag_secs),
            gop_cache_max_bytes: config.rtsp.gop_cache_max_bytes,
        };
        let mut r = Registry::default();
        for d in &config.devices {
            let entry = DeviceEntry {
                config: Arc::new(d.clone()),
                streams: d
                    .streams
                    .iter()
                    .map(|s| StreamEntry {
                        name: s.name.clone(),
                        hub: Hub::new(limits),
                    })
                    .collect(),
            };
            r.by_id.insert(d.id.to_string(), r.devices.len());
            r.devices.push(entry);
        }
        r
    }

    pub fn device(&self, id: &str) -> Option<&DeviceEntry> {
        self.by_id.get(id).map(|i| &self.devices[*i])
    }

    pub fn devices(&self) -> &[DeviceEntry] {
        &self.devices
    }
}
