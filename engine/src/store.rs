//! Content-addressed store: every stage output lives once under
//! `<cache>/store/<stage>/<key>`, where the key is the blake3 of everything that determines
//! it. Entries carry the blake3 of their payload, so a truncated or corrupted file is
//! detected on read and treated as a miss (recomputed), never as data.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// File header: magic, then the 32-byte blake3 of the payload.
const MAGIC: &[u8; 8] = b"HHNSTOR1";
const HEADER_LEN: usize = 8 + 32;

/// A 32-byte content key, shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    pub fn parse(hex: &str) -> Option<Key> {
        blake3::Hash::from_hex(hex).ok().map(|h| Key(*h.as_bytes()))
    }

    /// First 12 hex digits, for tables and logs.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }
}

/// Written as its 64 hex digits (journal lines, metrics).
impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let hex = String::deserialize(d)?;
        Key::parse(&hex).ok_or_else(|| {
            serde::de::Error::custom(format!("`{hex}` is not a key (64 hex digits)"))
        })
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.short())
    }
}

/// Builds a stage key from its stage name, version, parameters and inputs. Every part is
/// length-prefixed so that no two different input lists hash alike.
pub struct KeyBuilder(blake3::Hasher);

impl KeyBuilder {
    pub fn new(stage: &str, version: u32) -> Self {
        let mut b = KeyBuilder(blake3::Hasher::new());
        b.bytes(b"hhnas-pipe/key/v1");
        b.bytes(stage.as_bytes());
        b.bytes(&version.to_le_bytes());
        b
    }

    pub fn bytes(&mut self, data: &[u8]) -> &mut Self {
        self.0.update(&(data.len() as u64).to_le_bytes());
        self.0.update(data);
        self
    }

    /// Canonical bincode of a parameter value.
    pub fn param<T: Serialize>(&mut self, value: &T) -> &mut Self {
        let encoded = encode(value).expect("parameters are plain serializable data");
        self.bytes(&encoded)
    }

    pub fn input(&mut self, key: &Key) -> &mut Self {
        self.bytes(&key.0)
    }

    pub fn finish(&self) -> Key {
        Key(*self.0.finalize().as_bytes())
    }
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).context("encoding value")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (value, _) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .context("decoding value")?;
    Ok(value)
}

/// Writes `data` to `path` atomically: a temp file in the same directory, fsynced, then
/// renamed over the target, then the directory fsynced. A crash leaves the old file or
/// the new one, never a mix.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().context("path has no parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // host + pid + a process-wide counter: no two writers of the same entry share a temp
    // file, also not tasks on two nodes of a cluster writing one shared cache.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}-{n}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        crate::host::hostname(),
        std::process::id()
    ));
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(data).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        // A failed write never leaves its temporary file behind: on a full disk that
        // would keep the disk full.
        let _ = fs::remove_file(&tmp);
        if e.kind() == std::io::ErrorKind::StorageFull {
            return Err(anyhow::anyhow!(
                "{}: no space left on the filesystem that holds {} ({} bytes to write). \
                 Nothing stored before was changed, and this entry was not written. Fix: \
                 free space there (`hhnas-pipe gc` removes entries no run uses), then \
                 `hhnas-pipe resume` continues from the last completed step",
                path.display(),
                mount_point(dir).display(),
                data.len()
            ));
        }
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The mount point of the filesystem `dir` is on (the longest mount prefix in
/// /proc/mounts), or `dir` itself where that cannot be read.
fn mount_point(dir: &Path) -> PathBuf {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(PathBuf::from)
        .filter(|m| dir.starts_with(m))
        .max_by_key(|m| m.as_os_str().len())
        .unwrap_or(dir)
}

/// The store rooted at `<cache>/store`.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// What a read found.
pub enum Lookup<T> {
    Hit(T),
    Miss,
    /// The entry existed but failed verification; it was moved aside.
    Corrupt(String),
}

impl Store {
    pub fn new(cache_dir: &Path) -> Self {
        Store {
            root: cache_dir.join("store"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, stage: &str, key: &Key) -> PathBuf {
        self.root.join(stage).join(key.hex())
    }

    pub fn contains(&self, stage: &str, key: &Key) -> bool {
        self.path(stage, key).is_file()
    }

    /// Stores raw bytes with a verification header.
    pub fn put_bytes(&self, stage: &str, key: &Key, payload: &[u8]) -> Result<()> {
        let mut data = Vec::with_capacity(HEADER_LEN + payload.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(blake3::hash(payload).as_bytes());
        data.extend_from_slice(payload);
        write_atomic(&self.path(stage, key), &data)
    }

    pub fn put<T: Serialize>(&self, stage: &str, key: &Key, value: &T) -> Result<()> {
        self.put_bytes(stage, key, &encode(value)?)
    }

    /// Reads and verifies raw bytes. A damaged entry is renamed to `<key>.corrupt` so that
    /// the next write can replace it and the evidence stays for inspection.
    pub fn get_bytes(&self, stage: &str, key: &Key) -> Result<Lookup<Vec<u8>>> {
        let path = self.path(stage, key);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::Miss),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let problem = if data.len() < HEADER_LEN || &data[..8] != MAGIC {
            Some("header missing or truncated")
        } else if blake3::hash(&data[HEADER_LEN..]).as_bytes() != &data[8..HEADER_LEN] {
            Some("content does not match its stored blake3 (truncated or corrupted)")
        } else {
            None
        };
        match problem {
            None => Ok(Lookup::Hit(data[HEADER_LEN..].to_vec())),
            Some(why) => {
                let aside = path.with_extension("corrupt");
                let _ = fs::rename(&path, &aside);
                Ok(Lookup::Corrupt(format!(
                    "cache entry {} is damaged ({why}); moved to {} and recomputing",
                    path.display(),
                    aside.display()
                )))
            }
        }
    }

    pub fn get<T: DeserializeOwned>(&self, stage: &str, key: &Key) -> Result<Lookup<T>> {
        Ok(match self.get_bytes(stage, key)? {
            Lookup::Hit(bytes) => match decode(&bytes) {
                Ok(v) => Lookup::Hit(v),
                // Verified bytes that no longer decode come from an older format.
                Err(e) => Lookup::Corrupt(format!(
                    "cache entry {} does not decode ({e:#}); recomputing",
                    self.path(stage, key).display()
                )),
            },
            Lookup::Miss => Lookup::Miss,
            Lookup::Corrupt(w) => Lookup::Corrupt(w),
        })
    }

    /// Total size in bytes and entry count.
    pub fn size(&self) -> (u64, usize) {
        let mut bytes = 0;
        let mut count = 0;
        for entry in walkdir::WalkDir::new(&self.root)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
        {
            bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            count += 1;
        }
        (bytes, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let key = KeyBuilder::new("s", 1).param(&(1u32, "x")).finish();
        store.put("s", &key, &vec![1u64, 2, 3]).unwrap();
        match store.get::<Vec<u64>>("s", &key).unwrap() {
            Lookup::Hit(v) => assert_eq!(v, vec![1, 2, 3]),
            _ => panic!("expected hit"),
        }
        // Truncate the file: must be reported corrupt, then a miss.
        let path = store.path("s", &key);
        let data = fs::read(&path).unwrap();
        fs::write(&path, &data[..data.len() - 1]).unwrap();
        assert!(matches!(
            store.get::<Vec<u64>>("s", &key).unwrap(),
            Lookup::Corrupt(_)
        ));
        assert!(matches!(
            store.get::<Vec<u64>>("s", &key).unwrap(),
            Lookup::Miss
        ));
    }

    #[test]
    fn keys_depend_on_every_part() {
        let a = KeyBuilder::new("s", 1).param(&1u32).finish();
        assert_ne!(a, KeyBuilder::new("s", 2).param(&1u32).finish());
        assert_ne!(a, KeyBuilder::new("t", 1).param(&1u32).finish());
        assert_ne!(a, KeyBuilder::new("s", 1).param(&2u32).finish());
        assert_eq!(a, KeyBuilder::new("s", 1).param(&1u32).finish());
        assert_eq!(Key::parse(&a.hex()), Some(a));
    }
}
