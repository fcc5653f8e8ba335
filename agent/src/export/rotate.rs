//! A log file that rotates by size like lumberjack (what Hubble uses): the full
//! file is renamed to `name-<UTC time>.ext`, optionally gzipped, and only the
//! newest `max_backups` backups are kept. Lines are written whole, so a line is
//! in exactly one file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::json_text::civil_from_days;

/// When a [`RotatingFile`] rotates and what it keeps (Hubble's `export-file-*` flags).
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Size in bytes the file may reach; a write that would pass it rotates first
    /// (a single batch larger than this still goes into one file).
    pub max_bytes: u64,
    /// How many backups survive a rotation (the newest ones); 0 keeps none.
    pub max_backups: usize,
    /// Gzip each backup (`.gz` appended) right after it is renamed.
    pub compress: bool,
}

/// An append-only log file that rotates by size; the writer thread owns it alone.
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    size: u64,
}

fn open(path: &Path) -> io::Result<(File, u64)> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

impl RotatingFile {
    /// Opens `path` for appending (creating it and its directory), counting what it
    /// already holds towards the next rotation.
    pub fn open(path: PathBuf, rotation: Rotation) -> io::Result<Self> {
        let (file, size) = open(&path)?;
        Ok(Self {
            path,
            rotation,
            file,
            size,
        })
    }

    /// Writes `lines` (whole lines), rotating first when they would not fit.
    pub fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + lines.len() as u64 > self.rotation.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(lines)?;
        self.size += lines.len() as u64;
        Ok(())
    }

    fn backup_name(&self) -> PathBuf {
        let stem = self
            .path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let ext = self
            .path
            .extension()
            .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
        let now = time_stamp();
        let mut candidate = self.path.with_file_name(format!("{stem}-{now}{ext}"));
        let mut n = 1;
        // Two rotations within one millisecond must not overwrite each other.
        while candidate.exists() || with_gz(&candidate).exists() {
            candidate = self.path.with_file_name(format!("{stem}-{now}.{n}{ext}"));
            n += 1;
        }
        candidate
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let backup = self.backup_name();
        std::fs::rename(&self.path, &backup)?;
        let (file, size) = open(&self.path)?;
        self.file = file;
        self.size = size;
        if self.rotation.compress {
            compress(&backup)?;
        }
        self.prune()
    }

    /// Backups of this file, oldest first (their names sort by time).
    pub fn backups(&self) -> io::Result<Vec<PathBuf>> {
        let stem = self
            .path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        let prefix = format!("{stem}-");
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p != &self.path)
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
            .filter(|p| p.extension().is_none_or(|e| e != "tmp"))
            .collect();
        // Oldest first: by time, then by the collision counter (`.1`, `.2` … after the
        // time), which a plain name sort would put before the un-numbered first backup.
        found.sort_by_key(|path| backup_order(path, prefix.len()));
        Ok(found)
    }

    fn prune(&self) -> io::Result<()> {
        let backups = self.backups()?;
        let excess = backups.len().saturating_sub(self.rotation.max_backups);
        for old in &backups[..excess] {
            std::fs::remove_file(old)?;
        }
        Ok(())
    }

    /// Flushes what was written; the writer thread calls it after every batch.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Length of [`time_stamp`]'s text, `YYYY-MM-DDTHH-MM-SS.mmm`.
const TIME_STAMP_LEN: usize = 23;

/// A backup's place in time: its stamp, then its collision counter (0 when none).
fn backup_order(path: &Path, prefix_len: usize) -> (String, u32) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = name
        .get(prefix_len..prefix_len + TIME_STAMP_LEN)
        .unwrap_or_default()
        .to_owned();
    let counter = name
        .get(prefix_len + TIME_STAMP_LEN..)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.split('.').next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    (stamp, counter)
}

fn with_gz(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".gz");
    PathBuf::from(name)
}

/// Gzips `path` into `path.gz`. The archive is written under a temporary name and
/// renamed when complete, so a crash leaves the plain backup, never a truncated archive.
fn compress(path: &Path) -> io::Result<()> {
    let target = with_gz(path);
    let mut partial = target.as_os_str().to_owned();
    partial.push(".tmp");
    let partial = PathBuf::from(partial);
    let mut input = File::open(path)?;
    let output = File::create(&partial)?;
    let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
    io::copy(&mut input, &mut encoder)?;
    encoder.finish()?.sync_all()?;
    std::fs::rename(&partial, &target)?;
    std::fs::remove_file(path)
}

/// lumberjack's backup time format, UTC: `2006-01-02T15-04-05.000`.
fn time_stamp() -> String {
    let now = sightline_proto::Timestamp::now();
    let nanos = now.seconds as i128 * 1_000_000_000 + now.nanos as i128;
    let millis = (nanos / 1_000_000) as i64;
    let (days, rest) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    let (h, m, s, ms) = (rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000);
    let (y, mo, d) = civil_from_days(days);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}-{m:02}-{s:02}.{ms:03}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Read;

    use super::*;

    #[test]
    fn backups_of_one_millisecond_sort_by_their_counter() {
        let path = |name: &str| PathBuf::from(format!("/x/{name}"));
        let prefix = "events-".len();
        let mut names = [
            path("events-2026-12-06T17-50-01.123.2.log.gz"),
            path("events-2026-12-06T17-50-01.123.log.gz"),
            path("events-2026-12-06T17-50-01.124.log.gz"),
            path("events-2026-12-06T17-50-01.123.10.log.gz"),
            path("events-2026-12-06T17-50-01.123.1.log"),
        ];
        names.sort_by_key(|p| backup_order(p, prefix));
        let order: Vec<String> = names
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            order,
            [
                "events-2026-12-06T17-50-01.123.log.gz",
                "events-2026-12-06T17-50-01.123.1.log",
                "events-2026-12-06T17-50-01.123.2.log.gz",
                "events-2026-12-06T17-50-01.123.10.log.gz",
                "events-2026-12-06T17-50-01.124.log.gz",
            ]
        );
        assert_eq!(time_stamp().len(), TIME_STAMP_LEN);
    }

    #[test]
    fn dates_convert_like_a_calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn rotation_keeps_every_line_once_and_only_the_newest_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let rotation = Rotation {
            max_bytes: 1000,
            max_backups: 3,
            compress: true,
        };
        let mut file = RotatingFile::open(path.clone(), rotation).unwrap();
        let lines: Vec<String> = (0..400).map(|i| format!("{{\"line\":{i:05}}}\n")).collect();
        for chunk in lines.chunks(3) {
            file.write_lines(chunk.concat().as_bytes()).unwrap();
        }
        file.flush().unwrap();
        let backups = file.backups().unwrap();
        assert_eq!(backups.len(), 3, "{backups:?}");
        let mut seen = String::new();
        for backup in &backups {
            assert!(backup.to_string_lossy().ends_with(".log.gz"), "{backup:?}");
            let mut text = String::new();
            flate2::read::GzDecoder::new(File::open(backup).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            assert!(text.len() as u64 <= 1000);
            seen.push_str(&text);
        }
        seen.push_str(&std::fs::read_to_string(&path).unwrap());
        // The kept files hold the newest lines, in order, each once.
        let kept: Vec<&str> = seen.lines().collect();
        let expected: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
        assert_eq!(kept, expected[expected.len() - kept.len()..]);
        assert!(kept.len() > 150, "three backups and the live file: {}", kept.len());
    }
}
