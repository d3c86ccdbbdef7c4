//! Run-state changes published to every monitor (QMP events).

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Receives every event the board publishes.
pub trait EventListener: Send + Sync {
    /// One event: QEMU's name (`STOP`, `SHUTDOWN`, ...) and its data.
    fn event(&self, name: &str, data: Option<Value>);
}

/// The board's event fan-out.
#[derive(Default)]
pub struct Events {
    listeners: Mutex<Vec<Arc<dyn EventListener>>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    /// Add a listener.
    pub fn subscribe(&self, l: Arc<dyn EventListener>) {
        if let Ok(mut v) = self.listeners.lock() {
            v.push(l);
        }
    }

    /// Publish an event to every listener.
    pub fn emit(&self, name: &str, data: Option<Value>) {
        let ls = self.listeners.lock().map(|v| v.clone()).unwrap_or_default();
        for l in ls {
            l.event(name, data.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Rec(Mutex<Vec<String>>);
    impl EventListener for Rec {
        fn event(&self, name: &str, data: Option<Value>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{name} {}", data.unwrap_or(Value::Null)));
        }
    }

    #[test]
    fn every_listener_gets_every_event_in_order() {
        let e = Events::default();
        let a = Arc::new(Rec::default());
        let b = Arc::new(Rec::default());
        e.subscribe(a.clone());
        e.subscribe(b.clone());
        e.emit("STOP", None);
        e.emit("SHUTDOWN", Some(serde_json::json!({"guest": true})));
        let want = vec![
            "STOP null".to_string(),
            "SHUTDOWN {\"guest\":true}".to_string(),
        ];
        assert_eq!(*a.0.lock().unwrap(), want);
        assert_eq!(*b.0.lock().unwrap(), want);
    }
}
