//! Sample sets and the pre-encoded exposition served on `/metrics`.
//!
//! Source data (up to hundreds of thousands of samples) is encoded once per change into a raw
//! deflate stream that ends on a sync flush, and only that compressed form is kept. A scrape
//! appends the small, live part (the exporter's own metrics and `# EOF`) as a second deflate
//! stream and wraps both in one gzip member, combining the CRCs, so a gzip scrape copies
//! pre-compressed bytes and compresses a few kilobytes. The raw text never stays in memory.

use std::fmt;
use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// A metric family a source exposes. Source families are all gauges: that keeps the cached
/// text identical in OpenMetrics and in the Prometheus 0.0.4 text format.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
}

/// The immutable result of one successful collection of one target.
pub trait SampleSet: Send + Sync + fmt::Debug + 'static {
    /// The families this set's source exposes, the same slice for every set of that source.
    fn families(&self) -> &'static [Family];
    /// Writes the samples of `families()[family]` for `target` with `enc.encode_family`.
    fn encode(&self, family: usize, target: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result;
    /// The number of upstream objects (enterprises, customers, ...) in the set.
    fn objects(&self) -> usize;
}

/// Writes one gauge sample of the family `enc` describes.
/// Label values longer than this are cut (at a character boundary) and end in `…`: an
/// upstream cannot make one series arbitrarily large.
pub const MAX_LABEL_VALUE_BYTES: usize = 512;

/// Writes one gauge sample of the family `enc` describes, with label values capped at
/// [`MAX_LABEL_VALUE_BYTES`].
pub fn gauge(enc: &mut MetricEncoder<'_>, labels: &[(&str, &str)], value: f64) -> fmt::Result {
    if labels.iter().all(|(_, v)| v.len() <= MAX_LABEL_VALUE_BYTES) {
        return enc.encode_family(&labels)?.encode_gauge(&value);
    }
    let capped: Vec<(&str, std::borrow::Cow<'_, str>)> = labels
        .iter()
        .map(|&(k, v)| (k, cap_label_value(v)))
        .collect();
    enc.encode_family(&capped)?.encode_gauge(&value)
}

/// `v`, or its first [`MAX_LABEL_VALUE_BYTES`] bytes' worth of whole characters and `…`.
pub fn cap_label_value(v: &str) -> std::borrow::Cow<'_, str> {
    if v.len() <= MAX_LABEL_VALUE_BYTES {
        return v.into();
    }
    let mut end = MAX_LABEL_VALUE_BYTES - '…'.len_utf8();
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &v[..end]).into()
}

/// One target's samples, as handed to the encoder.
#[derive(Debug, Clone)]
pub struct TargetSamples {
    pub collector: &'static str,
    pub target: String,
    pub samples: Arc<dyn SampleSet>,
}

/// The cached part of the exposition.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Raw deflate data, byte-aligned by a sync flush, without a final block.
    deflate: Bytes,
    crc: u32,
    len: u64,
}

/// The gzip level for the cached part: it is compressed once per change, so a fast level
/// keeps collections cheap while still shrinking text about tenfold.
const LEVEL: Compression = Compression::new(1);
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot::encode(Vec::new())
    }
}

impl Snapshot {
    /// Encodes every target's samples, families grouped across targets as the text formats
    /// require. Targets of the same collector share their families.
    pub fn encode(sets: Vec<TargetSamples>) -> Snapshot {
        Snapshot::encode_sized(sets, 0)
    }

    /// Like `encode`, with room for `capacity` compressed bytes from the start (the previous
    /// snapshot's size is a good guess), which avoids growing and copying the output.
    pub fn encode_sized(mut sets: Vec<TargetSamples>, capacity: usize) -> Snapshot {
        sets.sort_by(|a, b| (a.collector, &a.target).cmp(&(b.collector, &b.target)));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Sources(sets)));
        let mut w = DeflateWriter::new(capacity);
        // Encoding into our own writer cannot fail: errors only come from a SampleSet.
        if let Err(e) = prometheus_client::encoding::text::encode_registry(&mut w, &registry) {
            tracing::error!(error = %e, "encoding samples failed; serving an empty snapshot");
            return Snapshot::encode(Vec::new());
        }
        w.finish()
    }

    /// The compressed size of the cached part.
    pub fn compressed_len(&self) -> usize {
        self.deflate.len()
    }

    /// The uncompressed size of the cached part.
    pub fn text_len(&self) -> u64 {
        self.len
    }

    /// A complete gzip body: the cached part followed by `tail`.
    pub fn gzip_with(&self, tail: &str) -> [Bytes; 4] {
        let mut enc = DeflateEncoder::new(Vec::with_capacity(tail.len() / 4 + 64), LEVEL);
        // Writing into a Vec cannot fail.
        let _ = enc.write_all(tail.as_bytes());
        let tail_deflate = enc.finish().unwrap_or_default();

        let mut crc = crc32fast::Hasher::new_with_initial_len(self.crc, self.len);
        let mut tail_crc = crc32fast::Hasher::new();
        tail_crc.update(tail.as_bytes());
        crc.combine(&tail_crc);
        let total = self.len + tail.len() as u64;
        let mut trailer = Vec::with_capacity(8);
        trailer.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE is the length modulo 2^32 (RFC 1952).
        trailer.extend_from_slice(&(total as u32).to_le_bytes());
        [
            Bytes::from_static(&GZIP_HEADER),
            self.deflate.clone(),
            Bytes::from(tail_deflate),
            Bytes::from(trailer),
        ]
    }

    /// The cached part as text, decompressed in chunks of about `chunk` bytes.
    pub fn text_chunks(
        &self,
        chunk: usize,
    ) -> impl Iterator<Item = std::io::Result<Bytes>> + Send + 'static {
        use std::io::Read as _;
        let mut dec = flate2::read::DeflateDecoder::new(std::io::Cursor::new(self.deflate.clone()));
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            let mut buf = vec![0u8; chunk];
            let mut filled = 0;
            while filled < chunk {
                match dec.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    // A stream without a final block ends in an "unexpected EOF" once all of
                    // its data has been produced.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => {
                        done = true;
                        return Some(Err(e));
                    }
                }
            }
            if filled < chunk {
                done = true;
            }
            if filled == 0 {
                return None;
            }
            buf.truncate(filled);
            Some(Ok(Bytes::from(buf)))
        })
    }

    /// The cached part as one string; for tests and `--once`.
    pub fn text(&self) -> String {
        let mut out = Vec::with_capacity(self.len as usize);
        for chunk in self.text_chunks(1 << 16) {
            match chunk {
                Ok(c) => out.extend_from_slice(&c),
                Err(_) => break,
            }
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[derive(Debug)]
struct Sources(Vec<TargetSamples>);

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        for run in self.0.chunk_by(|a, b| a.collector == b.collector) {
            let families = run[0].samples.families();
            for (i, family) in families.iter().enumerate() {
                let mut metric =
                    encoder.encode_descriptor(family.name, family.help, None, MetricType::Gauge)?;
                for set in run {
                    set.samples.encode(i, &set.target, &mut metric)?;
                }
            }
        }
        Ok(())
    }
}

/// A `fmt::Write` that compresses as it goes, buffering the many tiny writes of the encoder.
struct DeflateWriter {
    buf: String,
    enc: DeflateEncoder<Vec<u8>>,
    crc: crc32fast::Hasher,
    len: u64,
}

const WRITE_BUFFER: usize = 1 << 16;

impl DeflateWriter {
    fn new(capacity: usize) -> Self {
        DeflateWriter {
            buf: String::with_capacity(WRITE_BUFFER),
            enc: DeflateEncoder::new(Vec::with_capacity(capacity), LEVEL),
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    fn drain(&mut self) {
        self.crc.update(self.buf.as_bytes());
        self.len += self.buf.len() as u64;
        // Compressing into a Vec cannot fail.
        let _ = self.enc.write_all(self.buf.as_bytes());
        self.buf.clear();
    }

    fn finish(mut self) -> Snapshot {
        self.drain();
        // A sync flush ends the data on a byte boundary without a final block, so another
        // deflate stream can follow it inside the same gzip member.
        let _ = self.enc.flush();
        let mut data = std::mem::take(self.enc.get_mut());
        // Shrinking copies the data; only worth it when much of the buffer is unused.
        if data.capacity() - data.len() > data.len() / 8 {
            data.shrink_to_fit();
        }
        Snapshot {
            deflate: Bytes::from(data),
            crc: self.crc.finalize(),
            len: self.len,
        }
    }
}

impl fmt::Write for DeflateWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.buf.len() + s.len() > WRITE_BUFFER {
            self.drain();
        }
        if s.len() > WRITE_BUFFER {
            self.buf.push_str(s);
            self.drain();
        } else {
            self.buf.push_str(s);
        }
        Ok(())
    }
}

/// Converts OpenMetrics text of the live part to the Prometheus 0.0.4 text format: counters
/// are named with their `_total` suffix in HELP and TYPE, and there is no `# EOF`.
pub fn openmetrics_to_prometheus_text(om: &str) -> String {
    let mut counters: Vec<&str> = Vec::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.push(name);
            }
        }
    }
    let mut out = String::with_capacity(om.len() + counters.len() * 16);
    for line in om.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
