//! The store's durable form: one file, written whole to a temporary name, synced, and renamed
//! over the previous checkpoint (then the directory synced), so a crash leaves either the old
//! checkpoint or the new one, never a mix. A CRC-32 over the file catches a damaged one.
//!
//! ```text
//! "SUMSTORM-STORE/2\n" | stride: u32 | clients: u64
//! per client: id u128 | name len u16 + bytes | last_seen i64 | retired u8 | location: flag u8
//!   (+ AD site len u16 + bytes, boundary groups u64) | scan: flag u8 (+ time i64,
//!   serial u64, state u8, content_version u32) | serials: flag u8 (+ lo u64, hi u64) |
//!   gaps u16 + (u64, u64)* | stride × (time i64, changed i64, serial u32, state u8)
//! crc32 of everything before: u32
//! ```
//! All integers little-endian. Version 1 (without `retired` and `location`) still loads.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use protocol::Guid;

use super::serials::Serials;
use super::state::{Client, ScanState, UpdateState};
use super::store::Store;
use crate::faults::{Disk, Faults};
use crate::site::Location;

const MAGIC: &[u8] = b"SUMSTORM-STORE/2\n";
const MAGIC_V1: &[u8] = b"SUMSTORM-STORE/1\n";
/// The widest row a store has: the largest catalog.
const MAX_STRIDE: usize = crate::site::catalog::MAX_UPDATES;

/// Writes `store` to `path` atomically; `faults` may fail it before the sync.
pub fn save(store: &Store, path: &Path, faults: &Faults) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut out = Crc(BufWriter::with_capacity(1 << 20, File::create(&tmp)?), crc32fast::Hasher::new());
    out.put(MAGIC)?;
    let stride = store.stride();
    out.put(&(stride as u32).to_le_bytes())?;
    out.put(&(store.clients() as u64).to_le_bytes())?;
    let mut result = Ok(());
    store.for_each(|c, row| {
        if result.is_ok() {
            result = write_client(&mut out, c, row, stride);
        }
    });
    result?;
    let crc = out.1.clone().finalize();
    let Crc(mut file, _) = out;
    file.write_all(&crc.to_le_bytes())?;
    let file = file.into_inner().map_err(|e| e.into_error())?;
    faults.check(Disk::Checkpoint)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A writer that checksums what passes through it.
struct Crc<W>(W, crc32fast::Hasher);

impl<W: Write> Crc<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.1.update(bytes);
        self.0.write_all(bytes)
    }
}

/// A name as `len u16 + bytes`: the store keeps names far shorter (`protocol::names`); this
/// bound only makes sure the length fits, and never cuts inside a character, so the loader's
/// UTF-8 check always passes.
fn put_text<W: Write>(out: &mut Crc<W>, text: &str) -> io::Result<()> {
    let text = protocol::names::clip(text, u16::MAX as usize);
    out.put(&(text.len() as u16).to_le_bytes())?;
    out.put(text.as_bytes())
}

fn write_client<W: Write>(
    out: &mut Crc<W>,
    c: &Client,
    row: &[UpdateState],
    stride: usize,
) -> io::Result<()> {
    out.put(&c.id.0.to_le_bytes())?;
    put_text(out, &c.netbios_name)?;
    out.put(&c.last_seen.to_le_bytes())?;
    out.put(&[u8::from(c.retired)])?;
    match &c.location {
        None => out.put(&[0])?,
        Some(l) => {
            out.put(&[1])?;
            put_text(out, &l.ad_site)?;
            out.put(&l.boundary_groups.to_le_bytes())?;
        }
    }
    match c.scan {
        None => out.put(&[0])?,
        Some(s) => {
            out.put(&[1])?;
            out.put(&s.time.to_le_bytes())?;
            out.put(&s.serial.to_le_bytes())?;
            out.put(&[s.state])?;
            out.put(&s.content_version.to_le_bytes())?;
        }
    }
    match (c.serials.first(), c.serials.last()) {
        (Some(lo), Some(hi)) => {
            out.put(&[1])?;
            out.put(&lo.to_le_bytes())?;
            out.put(&hi.to_le_bytes())?;
        }
        _ => out.put(&[0])?,
    }
    out.put(&(c.serials.missing().len() as u16).to_le_bytes())?;
    for &(a, b) in c.serials.missing() {
        out.put(&a.to_le_bytes())?;
        out.put(&b.to_le_bytes())?;
    }
    let mut buf = Vec::with_capacity(stride * 21);
    for i in 0..stride {
        let u = row.get(i).copied().unwrap_or(UpdateState::EMPTY);
        buf.extend_from_slice(&u.time.to_le_bytes());
        buf.extend_from_slice(&u.changed.to_le_bytes());
        buf.extend_from_slice(&u.serial.to_le_bytes());
        buf.push(u.state);
    }
    out.put(&buf)
}

/// Why a checkpoint could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading the checkpoint: {0}")]
    Io(#[from] io::Error),
    #[error("the checkpoint is damaged: {0}")]
    Damaged(&'static str),
}

struct Reader<'b> {
    b: &'b [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], LoadError> {
        let bytes = self.b.get(self.at..self.at + N).ok_or(LoadError::Damaged("truncated"))?;
        self.at += N;
        Ok(bytes.try_into().unwrap_or([0; N]))
    }
    fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, LoadError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, LoadError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, LoadError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, LoadError> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    fn text(&mut self, len: usize, what: &'static str) -> Result<String, LoadError> {
        let bytes = self.b.get(self.at..self.at + len).ok_or(LoadError::Damaged("truncated"))?;
        self.at += len;
        String::from_utf8(bytes.to_vec()).map_err(|_| LoadError::Damaged(what))
    }
}

/// Loads a checkpoint into a new store of `2^shard_bits` shards.
pub fn load(path: &Path, shard_bits: u32) -> Result<Store, LoadError> {
    let bytes = fs::read(path)?;
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err(LoadError::Damaged("truncated"));
    };
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return Err(LoadError::Damaged("checksum mismatch"));
    }
    let mut r = Reader { b: body, at: 0 };
    let v1 = body.starts_with(MAGIC_V1);
    if !v1 && !body.starts_with(MAGIC) {
        return Err(LoadError::Damaged("not a store checkpoint"));
    }
    r.at = MAGIC.len();
    let stride = r.u32()? as usize;
    let count = r.u64()?;
    // Every client holds 21 bytes per update: a stride the file cannot hold is damage (and must
    // not become an allocation of gigabytes).
    if stride > MAX_STRIDE || (count > 0 && stride * 21 > body.len()) {
        return Err(LoadError::Damaged("update count"));
    }
    let store = Store::new(shard_bits, stride);
    let mut row = vec![UpdateState::EMPTY; stride];
    for _ in 0..count {
        let id = Guid(u128::from_le_bytes(r.take()?));
        let len = r.u16()? as usize;
        let netbios_name = r.text(len, "client name")?;
        let last_seen = r.i64()?;
        let (retired, location) = if v1 {
            (false, None)
        } else {
            let retired = r.u8()? != 0;
            let location = match r.u8()? {
                0 => None,
                _ => {
                    let len = r.u16()? as usize;
                    let ad_site = r.text(len, "AD site")?.into_boxed_str();
                    Some(Location { ad_site, boundary_groups: r.u64()? })
                }
            };
            (retired, location)
        };
        let scan = match r.u8()? {
            0 => None,
            _ => Some(ScanState {
                time: r.i64()?,
                serial: r.u64()?,
                state: r.u8()?,
                content_version: r.u32()?,
            }),
        };
        let span = match r.u8()? {
            0 => None,
            _ => Some((r.u64()?, r.u64()?)),
        };
        let gaps = (0..r.u16()?).map(|_| Ok((r.u64()?, r.u64()?))).collect::<Result<Vec<_>, LoadError>>()?;
        let serials = Serials::from_parts(span, gaps).ok_or(LoadError::Damaged("serial ranges"))?;
        for u in row.iter_mut() {
            *u = UpdateState::new(r.i64()?, r.i64()?, r.u32()?, r.u8()?);
        }
        store.restore(Client { id, netbios_name, scan, serials, last_seen, location, retired }, &row);
    }
    if r.at != body.len() {
        return Err(LoadError::Damaged("trailing bytes"));
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statesys::state::{Record, Target};

    /// Every client with its known states; rows compared without trailing empty entries (shards
    /// widen independently, a checkpoint writes the widest stride).
    fn snapshot(store: &Store) -> Vec<(Client, Vec<UpdateState>)> {
        let mut all = Vec::new();
        store.for_each(|c, row| {
            let known = row.iter().rposition(UpdateState::is_known).map_or(0, |i| i + 1);
            all.push((c.clone(), row[..known].to_vec()));
        });
        all.sort_by_key(|(c, _)| c.id);
        all
    }

    fn populated() -> Store {
        let store = Store::new(3, 8);
        for c in 0..50u128 {
            let records: Vec<Record> = (0..20u64)
                .map(|k| Record {
                    time: 1_000 * k as i64 + c as i64,
                    serial: 100 + k * (1 + c as u64 % 3),
                    target: match k % 5 {
                        0 => Target::Scan { state: 2 + (k % 2) as u8, content_version: 38 },
                        4 => Target::Other,
                        _ => Target::Update {
                            index: (k % 8) as u32 + if c == 7 { 10 } else { 0 },
                            state: (k % 4) as u8,
                        },
                    },
                })
                .collect();
            store.apply(Guid(c * 0x1234_5678_9ABC), &format!("PC{c}"), &records);
            if c % 4 == 0 {
                let location = Location { ad_site: format!("SITE-{c}").into(), boundary_groups: c as u64 };
                store.discover(Guid(c * 0x1234_5678_9ABC), "", Some(location), 5);
            }
        }
        // A client heard from once, long ago: retired.
        store.discover(Guid(999), "IDLE", None, 1);
        assert_eq!(store.retire_aged(3), 1);
        store
    }

    #[test]
    fn a_checkpoint_loads_back_the_same_store() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("store.ckpt");
        let store = populated();
        save(&store, &path, &Faults::default()).unwrap();
        assert!(!path.with_extension("tmp").exists());
        let loaded = load(&path, 1).unwrap();
        let (a, b) = (snapshot(&loaded), snapshot(&store));
        assert_eq!(a.len(), 51);
        assert!(a.iter().any(|(c, _)| c.retired) && a.iter().any(|(c, _)| c.location.is_some()));
        assert!(a == b, "the loaded store differs from the saved one");
        assert!(b.iter().any(|(_, row)| row.len() > 8), "a widened row is covered");
        // And it keeps working: a newer record still applies, a replay still does not.
        let c = Guid(3 * 0x1234_5678_9ABC);
        let r = Record { time: 1 << 40, serial: 1 << 20, target: Target::Update { index: 1, state: 3 } };
        assert_eq!(loaded.apply(c, "PC3", &[r]).applied, 1);
        assert_eq!(loaded.apply(c, "PC3", &[r]).stale, 1);
    }

    #[test]
    fn damage_is_detected_not_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("store.ckpt");
        save(&populated(), &path, &Faults::default()).unwrap();
        let good = fs::read(&path).unwrap();
        for at in [0, MAGIC.len() + 2, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            fs::write(&path, &bad).unwrap();
            assert!(matches!(load(&path, 1), Err(LoadError::Damaged(_))), "flip at {at}");
        }
        fs::write(&path, &good[..good.len() - 9]).unwrap();
        assert!(matches!(load(&path, 1), Err(LoadError::Damaged(_))));
        assert!(matches!(load(&tmp.path().join("missing"), 1), Err(LoadError::Io(_))));
    }

    /// Whatever the writer takes, the loader loads: clients named anything (any script, any
    /// length, a name cut at 65,535 bytes falling inside a character), anywhere, with any
    /// serials, states and times, at any stride up to the widest catalog.
    mod writer_and_loader_agree {
        use super::*;
        use proptest::prelude::*;

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                ".{0,40}",
                (65_500usize..65_540, any::<char>()).prop_map(|(n, c)| format!("{}{c}", "A".repeat(n))),
                (0usize..70_000).prop_map(|n| "é".repeat(n / 2)),
            ]
        }

        fn client() -> impl Strategy<Value = (Client, Vec<UpdateState>)> {
            (
                any::<u128>(),
                name(),
                proptest::option::of((name(), any::<u64>())),
                proptest::option::of((any::<i64>(), any::<u64>(), any::<u8>(), any::<u32>())),
                proptest::collection::vec(any::<u64>(), 0..80),
                any::<i64>(),
                any::<bool>(),
                proptest::collection::vec((any::<i64>(), any::<i64>(), any::<u32>(), any::<u8>()), 0..40),
            )
                .prop_map(
                    |(id, netbios_name, location, scan, serials, last_seen, retired, row)| {
                        let mut seen = Serials::default();
                        for s in serials {
                            seen.record(s);
                        }
                        let client = Client {
                            id: Guid(id),
                            netbios_name,
                            scan: scan.map(|(time, serial, state, content_version)| ScanState {
                                time,
                                serial,
                                state,
                                content_version,
                            }),
                            serials: seen,
                            last_seen,
                            location: location
                                .map(|(s, g)| Location { ad_site: s.into(), boundary_groups: g }),
                            retired,
                        };
                        (client, row.into_iter().map(|(t, c, s, st)| UpdateState::new(t, c, s, st)).collect())
                    },
                )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
            #[test]
            fn whatever_is_saved_loads(clients in proptest::collection::vec(client(), 0..6), stride in 0usize..50) {
                let store = Store::new(2, stride);
                for (c, row) in &clients {
                    store.restore(c.clone(), row);
                }
                let tmp = tempfile::tempdir().unwrap();
                let path = tmp.path().join("store.ckpt");
                save(&store, &path, &Faults::default()).unwrap();
                let loaded = load(&path, 1);
                prop_assert!(loaded.is_ok(), "{:?}", loaded.err());
                let loaded = loaded.unwrap();
                prop_assert_eq!(loaded.clients(), store.clients());
                // The last client of each ID is the one kept.
                let kept: std::collections::HashMap<Guid, &Client> = clients.iter().map(|(c, _)| (c.id, c)).collect();
                for c in kept.values() {
                    let (back, _) = loaded.client(c.id).unwrap();
                    prop_assert!(c.netbios_name.starts_with(&back.netbios_name));
                    let room = c.netbios_name.len().min(u16::MAX as usize);
                    prop_assert!(back.netbios_name.len() <= room && back.netbios_name.len() + 4 > room);
                }
            }
        }

        /// The widest row a store can have (the largest catalog) is written and loaded.
        #[test]
        fn the_widest_catalog_loads() {
            let store = Store::new(0, crate::site::catalog::MAX_UPDATES);
            let last = crate::site::catalog::MAX_UPDATES as u32 - 1;
            let r = Record { time: 5, serial: 1, target: Target::Update { index: last, state: 3 } };
            store.apply(Guid(1), "PC", &[r]);
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("store.ckpt");
            save(&store, &path, &Faults::default()).unwrap();
            let loaded = load(&path, 0).unwrap();
            assert_eq!(loaded.client(Guid(1)).unwrap().1[last as usize].state, 3);
        }
    }

    /// What a loader sees past the checksum is whatever the file holds: any bytes after the
    /// magic, with a valid CRC, and any byte changes of a real checkpoint with its CRC fixed up,
    /// load or fail with `Damaged`; never a panic, never a giant allocation.
    mod garbage {
        use super::*;
        use proptest::prelude::*;

        fn load_bytes(body: &[u8]) -> Result<Store, LoadError> {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("store.ckpt");
            let mut bytes = body.to_vec();
            bytes.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
            fs::write(&path, bytes).unwrap();
            load(&path, 1)
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
            #[test]
            fn arbitrary_bodies(tail in proptest::collection::vec(any::<u8>(), 0..2048), v1 in any::<bool>()) {
                let mut body = if v1 { MAGIC_V1.to_vec() } else { MAGIC.to_vec() };
                body.extend_from_slice(&tail);
                let _ = load_bytes(&body);
            }

            #[test]
            fn changed_checkpoints(changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
                let tmp = tempfile::tempdir().unwrap();
                let path = tmp.path().join("store.ckpt");
                save(&populated(), &path, &Faults::default()).unwrap();
                let bytes = fs::read(&path).unwrap();
                let mut body = bytes[..bytes.len() - 4].to_vec();
                for (at, b) in changes {
                    let i = MAGIC.len() + at.index(body.len() - MAGIC.len());
                    body[i] = b;
                }
                let _ = load_bytes(&body);
            }
        }
    }
}
