//! QMP `query-block`: each drive's real driver, cache mode, read-only state
//! and size (the virtual size a qcow2 header records; a raw image's file
//! length), in QEMU's shape.

use std::os::unix::fs::MetadataExt;

use devices::virtio::blk::{CacheMode, ImageFormat};
use serde_json::{json, Value};

use crate::config::DriveConfig;

/// The `image` member: format, sizes and (qcow2) cluster size.
fn image(d: &DriveConfig) -> Value {
    let filename = d.file.display().to_string();
    let file = std::fs::File::open(&d.file).ok();
    let meta = file.as_ref().and_then(|f| f.metadata().ok());
    let file_len = meta.as_ref().map_or(0, |m| m.len());
    // Bytes the file occupies on the host (st_blocks is in 512-byte units).
    let actual = meta.as_ref().map_or(0, |m| m.blocks() * 512);
    match d.format {
        ImageFormat::Raw => json!({
            "filename": filename, "format": "raw",
            "virtual-size": file_len, "actual-size": actual, "dirty-flag": false,
        }),
        ImageFormat::Qcow2 => {
            let q = file
                .as_ref()
                .and_then(|f| devices::virtio::qcow2::Qcow2::open(f).ok());
            json!({
                "filename": filename, "format": "qcow2",
                "virtual-size": q.as_ref().map_or(0, |q| q.size()),
                "cluster-size": q.as_ref().map_or(0, |q| q.cluster_size()),
                "actual-size": actual, "dirty-flag": false,
            })
        }
    }
}

/// One `query-block` entry.
pub fn entry(d: &DriveConfig) -> Value {
    let drv = match d.format {
        ImageFormat::Raw => "raw",
        ImageFormat::Qcow2 => "qcow2",
    };
    json!({
        "device": d.id, "locked": false, "removable": false, "type": "unknown",
        "io-status": "ok",
        "inserted": {
            "file": d.file.display().to_string(), "node-name": d.id,
            "ro": d.read_only, "drv": drv, "encrypted": false,
            "backing_file_depth": 0, "bps": 0, "bps_rd": 0, "bps_wr": 0,
            "iops": 0, "iops_rd": 0, "iops_wr": 0, "detect_zeroes": "off",
            "write_threshold": 0,
            "cache": {
                "writeback": d.cache.write_cache(),
                "direct": d.cache.direct(),
                "no-flush": d.cache == CacheMode::Unsafe,
            },
            "image": image(d),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_reports_its_cache_mode_and_length() {
        let path = std::env::temp_dir().join(format!("kindling-qb-{}.img", std::process::id()));
        std::fs::write(&path, vec![0u8; 12345]).unwrap();
        let d = DriveConfig {
            id: "d0".into(),
            file: path.clone(),
            read_only: true,
            cache: CacheMode::None,
            format: ImageFormat::Raw,
            location: String::new(),
        };
        let e = entry(&d);
        std::fs::remove_file(&path).ok();
        let i = &e["inserted"];
        assert_eq!(i["drv"], "raw");
        assert_eq!(i["ro"], true);
        assert_eq!(
            i["cache"],
            json!({"writeback": true, "direct": true, "no-flush": false})
        );
        assert_eq!(i["image"]["virtual-size"], 12345);
    }

    #[test]
    fn qcow2_reports_the_virtual_size() {
        // A minimal qcow2 v2 header: 1 GiB virtual, 64 KiB clusters, no L1.
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&2u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        h[36..40].copy_from_slice(&16384u32.to_be_bytes());
        h[40..48].copy_from_slice(&512u64.to_be_bytes());
        let path = std::env::temp_dir().join(format!("kindling-qb-{}.qcow2", std::process::id()));
        h.resize(512 + 16384 * 8, 0);
        std::fs::write(&path, &h).unwrap();
        let d = DriveConfig {
            id: "d1".into(),
            file: path.clone(),
            read_only: true,
            cache: CacheMode::Writeback,
            format: ImageFormat::Qcow2,
            location: String::new(),
        };
        let e = entry(&d);
        std::fs::remove_file(&path).ok();
        assert_eq!(e["inserted"]["drv"], "qcow2");
        assert_eq!(e["inserted"]["image"]["virtual-size"], 1u64 << 30, "{e}");
        assert_eq!(e["inserted"]["image"]["cluster-size"], 65536);
    }
}
