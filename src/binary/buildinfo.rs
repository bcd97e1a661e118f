//! The Go version and experiments, from the `.go.buildinfo` section.

/// What the toolchain recorded about itself.
#[derive(Clone, Debug, Default)]
pub struct BuildInfo {
    /// The full version string as recorded, e.g. `go1.24.11 X:noswissmap`.
    pub raw: String,
    /// Just the release, e.g. `go1.24.11`.
    pub version: String,
    /// GOEXPERIMENT settings that differ from the toolchain's defaults, e.g. `noswissmap`.
    pub experiments: Vec<String>,
}

const MAGIC: &[u8] = b"\xff Go buildinf:";

impl BuildInfo {
    /// Parses the section contents. Go 1.18+ stores the version inline as a varint-prefixed string.
    pub fn parse(section: &[u8]) -> Option<BuildInfo> {
        if section.len() < 32 || !section.starts_with(MAGIC) {
            return None;
        }
        let flags = section[15];
        if flags & 2 == 0 {
            return None; // pre-1.18 pointer form: older than anything we support.
        }
        let (len, n) = uvarint(&section[32..])?;
        let start = 32 + n;
        let bytes = section.get(start..start.checked_add(usize::try_from(len).ok()?)?)?;
        Some(BuildInfo::from_version(&String::from_utf8_lossy(bytes)))
    }

    /// Splits `go1.24.11 X:noswissmap` / `go1.27.3-X:mapsplitgroup,foo` into release and experiments.
    pub fn from_version(raw: &str) -> BuildInfo {
        let raw = raw.trim().to_string();
        let (version, exp) = match raw.find("X:") {
            Some(i) => (raw[..i].trim_end_matches([' ', '-']).to_string(), &raw[i + 2..]),
            None => (raw.split_whitespace().next().unwrap_or("").to_string(), ""),
        };
        let experiments = exp.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        BuildInfo { raw, version, experiments }
    }
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        x |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((x, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn splits_experiments() {
        let b = BuildInfo::from_version("go1.24.11 X:noswissmap");
        assert_eq!(b.version, "go1.24.11");
        assert_eq!(b.experiments, vec!["noswissmap"]);
        let b = BuildInfo::from_version("go1.27.3-X:mapsplitgroup");
        assert_eq!(b.version, "go1.27.3");
        assert_eq!(b.experiments, vec!["mapsplitgroup"]);
        let b = BuildInfo::from_version("go1.26.6");
        assert_eq!(b.version, "go1.26.6");
        assert!(b.experiments.is_empty());
    }
    #[test]
    fn rejects_garbage() {
        assert!(BuildInfo::parse(b"not a buildinfo section at all, really").is_none());
        let mut s = MAGIC.to_vec();
        s.extend_from_slice(&[8, 2]);
        s.resize(32, 0);
        s.extend_from_slice(&[0xff; 12]);
        assert!(BuildInfo::parse(&s).is_none());
    }
}
