//! KVM backend.
