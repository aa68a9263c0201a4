//! Sample sets and the pre-encoded exposition served on `/metrics`.
//!
//! Source data (up to hundreds of thousands of samples) is encoded once per change into
//! pieces of raw deflate data, each ending on a sync flush: one piece per (target, family)
//! holding that target's samples of the family, and small descriptor pieces (`# HELP`,
//! `# TYPE`). Only the compressed pieces are kept, never the raw text. The samples are the
//! same in OpenMetrics and in the Prometheus 0.0.4 text format; only counter descriptors
//! differ, so each format is a list of shared sample pieces with its own descriptor pieces
//! in between. A scrape appends the small, live part (the exporter's own metrics and
//! `# EOF`) as one more deflate piece and wraps everything in one gzip member, combining the
//! pieces' CRCs, so a gzip scrape copies pre-compressed bytes and compresses a few kilobytes.
//!
//! Pieces are cached by target and family: [`Snapshot::update`] re-encodes only the targets
//! whose sample set changed, and recompresses only the families whose text changed.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hasher as _;
use std::io::Write as _;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// A metric family a source exposes: what its descriptor says.
///
/// A family whose name ends in `_total` is a counter: it is described without the suffix in
/// OpenMetrics (`# TYPE x counter`, samples `x_total`) and with it in the Prometheus 0.0.4
/// text format (`# TYPE x_total counter`). Every other family is a gauge; `_info` gauges
/// have the value 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Family {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
}

impl Family {
    pub(crate) fn is_counter(&self) -> bool {
        self.name.ends_with("_total")
    }

    /// The name in OpenMetrics descriptors: without a counter's `_total`.
    pub(crate) fn metric_name(&self) -> &'static str {
        if self.is_counter() {
            &self.name[..self.name.len() - "_total".len()]
        } else {
            self.name
        }
    }
}

/// Writes the samples of one family of a set for a target, with `enc.encode_family` (see
/// [`gauge`] and [`counter`]).
pub(crate) type Encode<S> = fn(&S, &str, &mut MetricEncoder<'_>) -> fmt::Result;

/// One entry of a source's family table: the family's name, its help and the encoder of its
/// samples, side by side, so no index ties a name to its values. Written with non-capturing
/// closures, the tables stay `static`.
pub(crate) struct FamilyOf<S> {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) encode: Encode<S>,
}

impl<S> FamilyOf<S> {
    pub(crate) const fn family(&self) -> Family {
        Family {
            name: self.name,
            help: self.help,
        }
    }
}

impl<S> fmt::Debug for FamilyOf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.family().fmt(f)
    }
}

/// A source's result type: the table of its families, in exposition order. Every `Samples`
/// is a [`SampleSet`], the object-safe view the snapshot encodes.
pub(crate) trait Samples: Send + Sync + fmt::Debug + Sized + 'static {
    const FAMILIES: &'static [FamilyOf<Self>];
    /// The number of upstream objects (enterprises, customers, ...) in the set.
    fn count(&self) -> usize;
    /// Whether the family `name` is exposed when the config says nothing about it.
    fn on_by_default(_name: &str) -> bool {
        true
    }
}

/// The immutable result of one successful collection of one target, as the snapshot sees
/// it. Sources implement `Samples`; wrappers (the config's family selection) implement
/// this.
pub trait SampleSet: Send + Sync + fmt::Debug + 'static {
    /// The families this set's source exposes, the same table for every set of that source.
    fn families(&self) -> Table;
    /// Writes the samples of `families().get(family)` for `target`.
    fn encode(&self, family: usize, target: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result;
    /// The number of upstream objects (enterprises, customers, ...) in the set.
    fn objects(&self) -> usize;
    /// Whether `families().get(family)` is exposed for this set's target (family selection).
    fn enabled(&self, _family: usize) -> bool {
        true
    }
}

impl<S: Samples> SampleSet for S {
    fn families(&self) -> Table {
        Table::of::<S>()
    }

    fn encode(&self, family: usize, target: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result {
        match S::FAMILIES.get(family) {
            Some(f) => (f.encode)(self, target, enc),
            None => Ok(()),
        }
    }

    fn objects(&self) -> usize {
        self.count()
    }

    fn enabled(&self, family: usize) -> bool {
        S::FAMILIES
            .get(family)
            .is_some_and(|f| S::on_by_default(f.name))
    }
}

/// A source's family table without its encoders: what selection, naming checks and
/// descriptors need, the same for every set of the source.
#[derive(Clone, Copy)]
pub struct Table {
    len: usize,
    get: fn(usize) -> Option<Family>,
}

fn family_of<S: Samples>(i: usize) -> Option<Family> {
    S::FAMILIES.get(i).map(FamilyOf::family)
}

impl Table {
    /// The table of `S`.
    pub(crate) fn of<S: Samples>() -> Table {
        Table {
            len: S::FAMILIES.len(),
            get: family_of::<S>,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn get(&self, i: usize) -> Option<Family> {
        (self.get)(i)
    }

    /// The families in exposition order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Family> + 'static {
        let t = *self;
        (0..t.len).filter_map(move |i| t.get(i))
    }

    /// The index of the family `name`.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.iter().position(|f| f.name == name)
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|f| f.name)).finish()
    }
}

/// Writes one gauge sample of the family `enc` describes.
/// Label values longer than this are cut (at a character boundary) and end in `…`: an
/// upstream cannot make one series arbitrarily large.
pub(crate) const MAX_LABEL_VALUE_BYTES: usize = 512;

/// Writes one gauge sample of the family `enc` describes, with label values capped at
/// [`MAX_LABEL_VALUE_BYTES`].
pub(crate) fn gauge(
    enc: &mut MetricEncoder<'_>,
    labels: &[(&str, &str)],
    value: f64,
) -> fmt::Result {
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
pub(crate) fn cap_label_value(v: &str) -> std::borrow::Cow<'_, str> {
    if v.len() <= MAX_LABEL_VALUE_BYTES {
        return v.into();
    }
    let mut end = MAX_LABEL_VALUE_BYTES - '…'.len_utf8();
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &v[..end]).into()
}

/// Writes one counter sample (named with `_total`) of the counter family `enc` describes.
pub(crate) fn counter(
    enc: &mut MetricEncoder<'_>,
    labels: &impl prometheus_client::encoding::EncodeLabelSet,
    value: u64,
) -> fmt::Result {
    enc.encode_family(labels)?
        .encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

/// One target's samples, as handed to the encoder.
#[derive(Debug, Clone)]
pub struct TargetSamples {
    pub collector: &'static str,
    pub target: String,
    pub samples: Arc<dyn SampleSet>,
}

/// The two text formats served on `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Text,
}

/// Raw deflate data of one piece of text, byte-aligned by a sync flush and without a final
/// block. Pieces compressed independently never refer back before their own start, so any
/// sequence of them is one valid deflate stream.
#[derive(Debug, Clone, Default)]
struct Piece {
    deflate: Bytes,
    crc: u32,
    len: u64,
    /// Lines in the text: the number of series in a sample piece.
    lines: usize,
    /// Identifies the text, so that a family whose samples did not change is not
    /// compressed again.
    hash: u64,
}

/// One format's cached part: the pieces in exposition order, small neighbours joined.
#[derive(Debug, Clone, Default)]
struct Body {
    parts: Vec<Bytes>,
    crc: u32,
    len: u64,
}

/// One target's pieces, kept for the next [`Snapshot::update`].
#[derive(Debug, Clone)]
struct CachedTarget {
    collector: &'static str,
    target: String,
    families: Table,
    /// The set the pieces were encoded from; weak, so a snapshot does not keep replaced
    /// samples alive, while the allocation it pins cannot be reused by a new set.
    samples: Weak<dyn SampleSet>,
    /// Per family; `None` when the family is not selected for the target.
    pieces: Vec<Option<Piece>>,
}

/// The cached part of the exposition, in both formats.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    open_metrics: Body,
    text: Body,
    targets: Vec<CachedTarget>,
    /// Per family name: the OpenMetrics descriptor, and the 0.0.4 one where it differs.
    descriptors: HashMap<&'static str, (Piece, Option<Piece>)>,
}

/// The compression level of the cached pieces. They are compressed once per change, off
/// the scrape path, while every scrape sends them: level 6 keeps the body within about 3 %
/// of level 6 over the whole text (pieces start without a dictionary), where level 1 sends
/// 50 % more. Unchanged pieces are not compressed again.
const LEVEL: Compression = Compression::new(6);
/// The level of the live part, compressed on every gzip scrape.
const TAIL_LEVEL: Compression = Compression::new(1);
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// Pieces smaller than this are copied together into one buffer, so a scrape body is not
/// made of thousands of tiny chunks.
const JOIN_BELOW: usize = 16 << 10;

impl Snapshot {
    /// Encodes every target's samples, families grouped across targets as the text formats
    /// require. Targets of the same collector share their families.
    pub fn encode(sets: Vec<TargetSamples>) -> Snapshot {
        Snapshot::default().update(sets)
    }

    /// The snapshot of `sets`, reusing this snapshot's pieces: a target whose sample set is
    /// the same `Arc` as last time (a failed collection keeps its last good samples) is not
    /// encoded at all, and a family whose text did not change is not compressed again. The
    /// result is the same as `Snapshot::encode(sets)`.
    pub fn update(&self, mut sets: Vec<TargetSamples>) -> Snapshot {
        sets.sort_by(|a, b| (a.collector, &a.target).cmp(&(b.collector, &b.target)));
        let previous: HashMap<(&str, &str), &CachedTarget> = self
            .targets
            .iter()
            .map(|t| ((t.collector, t.target.as_str()), t))
            .collect();
        let targets: Vec<CachedTarget> = sets
            .iter()
            .map(|set| {
                let prev = previous.get(&(set.collector, set.target.as_str())).copied();
                let families = set.samples.families();
                let pieces = match prev {
                    Some(p)
                        if std::ptr::addr_eq(p.samples.as_ptr(), Arc::as_ptr(&set.samples))
                            && p.pieces.len() == families.len() =>
                    {
                        p.pieces.clone()
                    }
                    _ => (0..families.len())
                        .map(|i| {
                            set.samples.enabled(i).then(|| {
                                let cached = prev.and_then(|p| p.pieces.get(i)?.as_ref());
                                encode_piece(set, i, cached)
                            })
                        })
                        .collect(),
                };
                CachedTarget {
                    collector: set.collector,
                    target: set.target.clone(),
                    families,
                    samples: Arc::downgrade(&set.samples),
                    pieces,
                }
            })
            .collect();

        let mut descriptors = HashMap::new();
        let mut open_metrics = Assembler::default();
        let mut text = Assembler::default();
        // Families in the order of their collectors' tables; a family name two collectors
        // share is still described once, with every target's samples under it.
        let mut order: Vec<Family> = Vec::new();
        for run in targets.chunk_by(|a, b| a.collector == b.collector) {
            for family in run[0].families.iter() {
                if !order.iter().any(|f| f.name == family.name) {
                    order.push(family);
                }
            }
        }
        for family in order {
            let selected = || {
                targets.iter().filter_map(|t| {
                    let i = t.families.position(family.name)?;
                    t.pieces.get(i)?.as_ref()
                })
            };
            if selected().next().is_none() {
                continue;
            }
            let (om, text_only) = descriptors.entry(family.name).or_insert_with(|| {
                self.descriptors
                    .get(family.name)
                    .cloned()
                    .unwrap_or_else(|| describe(family))
            });
            open_metrics.push(om);
            text.push(text_only.as_ref().unwrap_or(om));
            for piece in selected() {
                open_metrics.push(piece);
                text.push(piece);
            }
        }
        Snapshot {
            open_metrics: open_metrics.finish(),
            text: text.finish(),
            targets,
            descriptors,
        }
    }

    fn body(&self, format: Exposition) -> &Body {
        match format {
            Exposition::OpenMetrics => &self.open_metrics,
            Exposition::Text => &self.text,
        }
    }

    /// The compressed size of the cached part (OpenMetrics).
    pub fn compressed_len(&self) -> usize {
        self.open_metrics.parts.iter().map(Bytes::len).sum()
    }

    /// The uncompressed size of the cached part (OpenMetrics).
    pub fn text_len(&self) -> u64 {
        self.open_metrics.len
    }

    /// The uncompressed size of the cached part in `format`.
    pub(crate) fn text_len_of(&self, format: Exposition) -> u64 {
        self.body(format).len
    }

    /// The number of series a target exposes, or `None` when it has no samples.
    pub fn series(&self, collector: &str, target: &str) -> Option<usize> {
        let t = self
            .targets
            .iter()
            .find(|t| t.collector == collector && t.target == target)?;
        Some(t.pieces.iter().flatten().map(|p| p.lines).sum())
    }

    /// A complete gzip body in OpenMetrics: the cached part followed by `tail`.
    pub fn gzip_with(&self, tail: &str) -> Vec<Bytes> {
        self.gzip_of(Exposition::OpenMetrics, tail)
    }

    /// A complete gzip body in `format`: the cached part followed by `tail`, which must be
    /// in the same format.
    pub(crate) fn gzip_of(&self, format: Exposition, tail: &str) -> Vec<Bytes> {
        let body = self.body(format);
        let mut enc = DeflateEncoder::new(Vec::with_capacity(tail.len() / 4 + 64), TAIL_LEVEL);
        // Writing into a Vec cannot fail.
        let _ = enc.write_all(tail.as_bytes());
        let tail_deflate = enc.finish().unwrap_or_default();

        let mut crc = crc32fast::Hasher::new_with_initial_len(body.crc, body.len);
        let mut tail_crc = crc32fast::Hasher::new();
        tail_crc.update(tail.as_bytes());
        crc.combine(&tail_crc);
        let total = body.len + tail.len() as u64;
        let mut trailer = Vec::with_capacity(8);
        trailer.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE is the length modulo 2^32 (RFC 1952).
        trailer.extend_from_slice(&(total as u32).to_le_bytes());
        let mut parts = Vec::with_capacity(body.parts.len() + 3);
        parts.push(Bytes::from_static(&GZIP_HEADER));
        parts.extend(body.parts.iter().cloned());
        parts.push(Bytes::from(tail_deflate));
        parts.push(Bytes::from(trailer));
        parts
    }

    /// The cached part as OpenMetrics text, decompressed in chunks of about `chunk` bytes.
    #[cfg(test)]
    pub(crate) fn text_chunks(
        &self,
        chunk: usize,
    ) -> impl Iterator<Item = std::io::Result<Bytes>> + Send + 'static {
        self.text_chunks_of(Exposition::OpenMetrics, chunk)
    }

    /// The cached part as text in `format`, decompressed in chunks of about `chunk` bytes.
    pub(crate) fn text_chunks_of(
        &self,
        format: Exposition,
        chunk: usize,
    ) -> impl Iterator<Item = std::io::Result<Bytes>> + Send + 'static {
        use std::io::Read as _;
        let parts = self.body(format).parts.clone();
        let mut done = parts.is_empty();
        let mut dec = flate2::read::DeflateDecoder::new(PartsReader {
            parts,
            part: 0,
            offset: 0,
        });
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

    /// The cached part as OpenMetrics text; for tests.
    pub fn text(&self) -> String {
        self.text_of(Exposition::OpenMetrics)
    }

    /// The cached part as one string in `format`; for tests and `--once`.
    pub fn text_of(&self, format: Exposition) -> String {
        let mut out = Vec::with_capacity(self.body(format).len as usize);
        for chunk in self.text_chunks_of(format, 1 << 16) {
            match chunk {
                Ok(c) => out.extend_from_slice(&c),
                Err(_) => break,
            }
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Reads a list of byte chunks as one stream.
struct PartsReader {
    parts: Vec<Bytes>,
    part: usize,
    offset: usize,
}

impl std::io::Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(p) = self.parts.get(self.part) {
            if self.offset < p.len() {
                let n = buf.len().min(p.len() - self.offset);
                buf[..n].copy_from_slice(&p[self.offset..self.offset + n]);
                self.offset += n;
                return Ok(n);
            }
            self.part += 1;
            self.offset = 0;
        }
        Ok(0)
    }
}

/// Builds a format's body from pieces, combining their CRCs.
#[derive(Default)]
struct Assembler {
    parts: Vec<Bytes>,
    small: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
}

impl Assembler {
    fn push(&mut self, piece: &Piece) {
        if piece.len == 0 {
            return;
        }
        self.crc.combine(&crc32fast::Hasher::new_with_initial_len(
            piece.crc, piece.len,
        ));
        self.len += piece.len;
        if piece.deflate.len() < JOIN_BELOW {
            self.small.extend_from_slice(&piece.deflate);
        } else {
            self.flush_small();
            self.parts.push(piece.deflate.clone());
        }
    }

    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            self.parts
                .push(Bytes::from(std::mem::take(&mut self.small)));
        }
    }

    fn finish(mut self) -> Body {
        self.flush_small();
        Body {
            parts: self.parts,
            crc: self.crc.finalize(),
            len: self.len,
        }
    }
}

/// Encodes one family of one target (the descriptor too when `descriptor_only`, nothing
/// else then) through prometheus-client, which owns the escaping rules.
#[derive(Debug)]
struct OneFamily {
    samples: Option<Arc<dyn SampleSet>>,
    family: Family,
    index: usize,
    target: String,
}

impl Collector for OneFamily {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let f = self.family;
        let kind = if f.is_counter() {
            MetricType::Counter
        } else {
            MetricType::Gauge
        };
        let mut metric = encoder.encode_descriptor(f.metric_name(), f.help, None, kind)?;
        match &self.samples {
            Some(s) => s.encode(self.index, &self.target, &mut metric),
            None => Ok(()),
        }
    }
}

fn write_family(
    family: Family,
    index: usize,
    target: &str,
    samples: Option<Arc<dyn SampleSet>>,
    w: &mut PieceWriter,
) -> fmt::Result {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(OneFamily {
        samples,
        family,
        index,
        target: target.to_string(),
    }));
    prometheus_client::encoding::text::encode_registry(w, &registry)
}

/// The descriptor pieces of a family: OpenMetrics, and Prometheus 0.0.4 for counters.
fn describe(family: Family) -> (Piece, Option<Piece>) {
    let mut om = String::new();
    // Writing into a String cannot fail.
    let _ = write_family(family, 0, "", None, &mut PieceWriter::text(&mut om));
    let compress = |text: &str| {
        let mut w = PieceWriter::new(0, true);
        let _ = fmt::Write::write_str(&mut w, text);
        w.finish()
    };
    let text = family
        .is_counter()
        .then(|| compress(&openmetrics_to_prometheus_text(&om)));
    (compress(&om), text)
}

/// The sample piece of one family of one target; `cached` is reused when the text is the
/// same.
fn encode_piece(set: &TargetSamples, index: usize, cached: Option<&Piece>) -> Piece {
    let Some(family) = set.samples.families().get(index) else {
        return Piece::default();
    };
    let write = |w: &mut PieceWriter| {
        write_family(family, index, &set.target, Some(set.samples.clone()), w)
    };
    if let Some(cached) = cached {
        let mut w = PieceWriter::new(2, false);
        if write(&mut w).is_ok() {
            let (hash, len) = w.identity();
            if hash == cached.hash && len == cached.len {
                return cached.clone();
            }
        }
    }
    let mut w = PieceWriter::new(2, true);
    match write(&mut w) {
        Ok(()) => w.finish(),
        Err(e) => {
            tracing::error!(
                collector = set.collector,
                target = %set.target,
                family = family.name,
                error = %e,
                "encoding samples failed; leaving the family out for this target"
            );
            Piece::default()
        }
    }
}

/// A `fmt::Write` that skips the descriptor lines, hashes, and compresses as it goes
/// (when asked to), buffering the many tiny writes of the encoder.
struct PieceWriter<'a> {
    skip_lines: usize,
    buf: String,
    enc: Option<DeflateEncoder<Vec<u8>>>,
    crc: crc32fast::Hasher,
    hash: std::hash::DefaultHasher,
    len: u64,
    lines: usize,
    /// Receives the raw text instead (descriptors).
    raw: Option<&'a mut String>,
}

const WRITE_BUFFER: usize = 1 << 16;

impl<'a> PieceWriter<'a> {
    fn new(skip_lines: usize, compress: bool) -> Self {
        PieceWriter {
            skip_lines,
            buf: String::with_capacity(WRITE_BUFFER),
            enc: compress.then(|| DeflateEncoder::new(Vec::new(), LEVEL)),
            crc: crc32fast::Hasher::new(),
            hash: std::hash::DefaultHasher::new(),
            len: 0,
            lines: 0,
            raw: None,
        }
    }

    fn text(out: &'a mut String) -> Self {
        PieceWriter {
            raw: Some(out),
            buf: String::new(),
            ..PieceWriter::new(0, false)
        }
    }

    fn drain(&mut self) {
        let b = self.buf.as_bytes();
        self.crc.update(b);
        self.hash.write(b);
        self.len += b.len() as u64;
        self.lines += b.iter().filter(|c| **c == b'\n').count();
        if let Some(enc) = &mut self.enc {
            // Compressing into a Vec cannot fail.
            let _ = enc.write_all(b);
        }
        self.buf.clear();
    }

    fn identity(mut self) -> (u64, u64) {
        self.drain();
        (self.hash.finish(), self.len)
    }

    fn finish(mut self) -> Piece {
        self.drain();
        let Some(mut enc) = self.enc.take() else {
            return Piece::default();
        };
        if self.len == 0 {
            return Piece::default();
        }
        // A sync flush ends the data on a byte boundary without a final block, so another
        // piece can follow it in the same deflate stream.
        let _ = enc.flush();
        let mut data = std::mem::take(enc.get_mut());
        // Shrinking copies the data; only worth it when much of the buffer is unused.
        if data.capacity() - data.len() > data.len() / 8 {
            data.shrink_to_fit();
        }
        Piece {
            deflate: Bytes::from(data),
            crc: self.crc.finalize(),
            len: self.len,
            lines: self.lines,
            hash: self.hash.finish(),
        }
    }
}

impl fmt::Write for PieceWriter<'_> {
    fn write_str(&mut self, mut s: &str) -> fmt::Result {
        if let Some(raw) = &mut self.raw {
            raw.push_str(s);
            return Ok(());
        }
        while self.skip_lines > 0 {
            match s.find('\n') {
                Some(i) => {
                    self.skip_lines -= 1;
                    s = &s[i + 1..];
                }
                None => return Ok(()),
            }
        }
        if self.buf.len() + s.len() > WRITE_BUFFER {
            self.drain();
        }
        self.buf.push_str(s);
        if self.buf.len() >= WRITE_BUFFER {
            self.drain();
        }
        Ok(())
    }
}

/// Converts OpenMetrics text (the live part, a counter's descriptor) to the Prometheus 0.0.4
/// text format: counters are named with their `_total` suffix in HELP and TYPE, and there is
/// no `# EOF`.
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

/// The length and CRC-32 of the exposition of `sets` in OpenMetrics and in the 0.0.4 text
/// format: pins the exact bytes of a large exposition without spelling it out.
#[cfg(test)]
pub(crate) fn fingerprint(sets: Vec<TargetSamples>) -> [(usize, u32); 2] {
    let snap = Snapshot::encode(sets);
    [Exposition::OpenMetrics, Exposition::Text].map(|f| {
        let text = snap.text_of(f);
        (text.len(), crc32fast::hash(text.as_bytes()))
    })
}

#[cfg(test)]
mod tests;
