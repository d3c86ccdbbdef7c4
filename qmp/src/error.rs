//! QMP error replies: QEMU's error classes and descriptions.

use serde_json::{json, Value};

/// QEMU's `QapiErrorClass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Everything else.
    GenericError,
    /// The command does not exist (or is not allowed in this state).
    CommandNotFound,
    /// A device exists but is not active.
    DeviceNotActive,
    /// The named device does not exist.
    DeviceNotFound,
    /// KVM lacks a capability.
    KVMMissingCap,
}

impl ErrorClass {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
            ErrorClass::DeviceNotActive => "DeviceNotActive",
            ErrorClass::DeviceNotFound => "DeviceNotFound",
            ErrorClass::KVMMissingCap => "KVMMissingCap",
        }
    }
}

/// A command failure as QMP reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{desc}")]
pub struct QmpError {
    /// Error class.
    pub class: ErrorClass,
    /// Human-readable description (QEMU's wording).
    pub desc: String,
}

impl QmpError {
    /// A `GenericError`.
    pub fn generic(desc: impl Into<String>) -> Self {
        QmpError {
            class: ErrorClass::GenericError,
            desc: desc.into(),
        }
    }

    /// A `CommandNotFound` error.
    pub fn not_found(desc: impl Into<String>) -> Self {
        QmpError {
            class: ErrorClass::CommandNotFound,
            desc: desc.into(),
        }
    }

    /// The `error` member of the reply.
    pub fn to_json(&self) -> Value {
        json!({"class": self.class.as_str(), "desc": self.desc})
    }
}
