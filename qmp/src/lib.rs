//! QEMU's QMP monitor protocol, with no VM types: endpoints, framing,
//! negotiation, argument validation, dispatch to a [`CommandHandler`] the
//! board implements, and events to every negotiated client.

pub mod endpoint;
pub mod error;
pub mod schema;
pub mod server;
pub mod stream;

pub use endpoint::{parse_mon_arg, parse_qmp_arg, parse_socket_chardev, Endpoint, MonitorConfig};
pub use error::{ErrorClass, QmpError};
pub use server::{CommandHandler, QmpServer, StartError, VersionInfo};
