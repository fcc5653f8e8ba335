//! Series of one metric family.
//!
//! The pipeline thread is the only writer. It looks series up in a map it owns,
//! keyed by the label values joined into one string, so a flow whose series
//! exists costs a hash of that string and an atomic add: no lock, no allocation.
//! Handlers that can describe a series by a few numbers and the flow's shared
//! endpoints reach it through a [`Shortcuts`] map first, without building the
//! string at all.
//! New series are also published to a map the scraper reads under a mutex, which
//! is taken only when a series is created, removed, or scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use rustc_hash::{FxHashMap, FxHashSet};

use super::shortcut::{Shortcut, Shortcuts};

/// Separates label values inside a [`LabelKey`]. A value that contains it has it
/// replaced (see [`LabelKey::extend`]), so keys never become ambiguous.
const SEPARATOR: char = '\u{1f}';

/// The label values of one series, built in place for every flow and reused.
#[derive(Debug, Default, Clone)]
pub(crate) struct LabelKey {
    text: String,
    values: usize,
}

impl LabelKey {
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.values = 0;
    }

    /// Starts the next label value (empty until [`extend`](Self::extend)ed).
    pub(crate) fn begin(&mut self) {
        if self.values > 0 {
            self.text.push(SEPARATOR);
        }
        self.values += 1;
    }

    /// Appends to the current label value.
    pub(crate) fn extend(&mut self, part: &str) {
        if part.contains(SEPARATOR) {
            self.text.push_str(&part.replace(SEPARATOR, "\u{fffd}"));
        } else {
            self.text.push_str(part);
        }
    }

    /// Adds one complete label value.
    pub(crate) fn push(&mut self, value: &str) {
        self.begin();
        self.extend(value);
    }

    /// Bytes written so far; a context identifier that wrote nothing falls back.
    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    /// Goes back to an earlier state (`len()` and `value_count()` taken then), to
    /// reuse the values written before it for a second series.
    pub(crate) fn truncate_to(&mut self, len: usize, values: usize) {
        self.text.truncate(len);
        self.values = values;
    }

    /// Direct access for formatted values (`write!`); callers must not write the separator.
    pub(crate) fn text_mut(&mut self) -> &mut String {
        &mut self.text
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn value_count(&self) -> usize {
        self.values
    }
}

/// Splits a stored key back into its label values.
pub(crate) fn label_values(key: &str) -> impl Iterator<Item = &str> {
    key.split(SEPARATOR)
}

/// What one series holds.
pub(crate) trait Cell: Send + Sync + 'static {
    const TYPE: MetricType;
    fn new_cell(buckets: &'static [f64]) -> Self;
    fn encode(&self, buckets: &'static [f64], encoder: MetricEncoder<'_>) -> std::fmt::Result;
}

#[derive(Debug, Default)]
pub(crate) struct CounterCell(AtomicU64);

impl CounterCell {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Cell for CounterCell {
    const TYPE: MetricType = MetricType::Counter;

    fn new_cell(_: &'static [f64]) -> Self {
        Self::default()
    }

    fn encode(&self, _: &'static [f64], mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }
}

/// A histogram with fixed upper bounds. Only the pipeline thread writes, so the
/// float sum is a plain load and store of its bits.
#[derive(Debug)]
pub(crate) struct HistogramCell {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
}

impl HistogramCell {
    /// Only the pipeline thread calls this (see [`Family`]), so plain loads and
    /// stores suffice.
    pub(crate) fn observe(&self, bounds: &[f64], value: f64) {
        let bump = |cell: &AtomicU64| cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if let Some(index) = bounds.iter().position(|bound| value <= *bound) {
            bump(&self.buckets[index]);
        }
        bump(&self.count);
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed)) + value;
        self.sum.store(sum.to_bits(), Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }
}

impl Cell for HistogramCell {
    const TYPE: MetricType = MetricType::Histogram;

    fn new_cell(bounds: &'static [f64]) -> Self {
        Self {
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn encode(&self, bounds: &'static [f64], mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        // The encoder takes per-bucket counts and accumulates them itself.
        let count = self.count();
        let mut buckets: Vec<(f64, u64)> = bounds
            .iter()
            .zip(self.buckets.iter())
            .map(|(bound, hits)| (*bound, hits.load(Ordering::Relaxed)))
            .collect();
        let bounded: u64 = buckets.iter().map(|(_, hits)| hits).sum();
        buckets.push((f64::INFINITY, count.saturating_sub(bounded)));
        encoder.encode_histogram::<NoLabelSet>(self.sum(), count, &buckets, None)
    }
}

/// Prometheus' default buckets, which Hubble's histograms use.
pub(crate) const DEFAULT_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The part of a family the scraper reads.
#[derive(Debug)]
pub(crate) struct Published<C> {
    /// Without the `_total` suffix, which the encoder adds to counters.
    pub name: &'static str,
    pub help: &'static str,
    pub label_names: Vec<&'static str>,
    buckets: &'static [f64],
    series: Mutex<FxHashMap<Box<str>, Arc<C>>>,
    /// Label sets refused because the family was at its series limit.
    limited: AtomicU64,
}

impl<C> Published<C> {
    fn series(&self) -> MutexGuard<'_, FxHashMap<Box<str>, Arc<C>>> {
        // A panic while holding the lock leaves a consistent map (every update is
        // one insert or remove), so a poisoned lock is still usable.
        self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// The name as it appears in a scrape (`_total` for counters).
    pub(crate) fn exposed_name(&self) -> String
    where
        C: Cell,
    {
        match C::TYPE {
            MetricType::Counter => format!("{}_total", self.name),
            _ => self.name.to_owned(),
        }
    }
}

/// What the registry encodes on a scrape, whatever the cell type.
pub trait Collect: Send + Sync + std::fmt::Debug {
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result;
    fn exposed_name(&self) -> String;
    fn limited(&self) -> u64;
}

impl<C: Cell + std::fmt::Debug> Collect for Published<C> {
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let series = self.series();
        let mut family = encoder.encode_descriptor(self.name, self.help, None, C::TYPE)?;
        for (key, cell) in series.iter() {
            let labels: Vec<(&str, &str)> = if self.label_names.is_empty() {
                Vec::new()
            } else {
                self.label_names.iter().copied().zip(label_values(key)).collect()
            };
            cell.encode(self.buckets, family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn exposed_name(&self) -> String {
        Published::exposed_name(self)
    }

    fn limited(&self) -> u64 {
        Published::limited(self)
    }
}

/// One metric family as the pipeline thread holds it.
#[derive(Debug)]
pub(crate) struct Family<C> {
    local: FxHashMap<Box<str>, Arc<C>>,
    shortcuts: Shortcuts<C>,
    published: Arc<Published<C>>,
    max_series: usize,
}

pub(crate) type CounterFamily = Family<CounterCell>;
pub(crate) type HistogramFamily = Family<HistogramCell>;

impl<C: Cell + std::fmt::Debug> Family<C> {
    pub(crate) fn new(
        name: &'static str,
        help: &'static str,
        label_names: Vec<&'static str>,
        max_series: usize,
    ) -> Self {
        Self::with_buckets(name, help, label_names, max_series, DEFAULT_BUCKETS)
    }

    pub(crate) fn with_buckets(
        name: &'static str,
        help: &'static str,
        label_names: Vec<&'static str>,
        max_series: usize,
        buckets: &'static [f64],
    ) -> Self {
        Self {
            local: FxHashMap::default(),
            // Room for several endpoint pairs per series (a namespace context
            // folds many pods into one series) before the shortcuts start over.
            shortcuts: Shortcuts::new(max_series.max(1024).saturating_mul(4)),
            published: Arc::new(Published {
                name,
                help,
                label_names,
                buckets,
                series: Mutex::new(FxHashMap::default()),
                limited: AtomicU64::new(0),
            }),
            max_series,
        }
    }

    pub(crate) fn collector(&self) -> Arc<dyn Collect> {
        self.published.clone()
    }

    /// The histogram bucket bounds (unused by counters).
    pub(crate) fn buckets(&self) -> &'static [f64] {
        self.published.buckets
    }

    /// Applies `update` to the series for `key`, created when new and the family
    /// is below its limit. One hash lookup when the series exists.
    pub(crate) fn update(&mut self, key: &LabelKey, update: impl FnOnce(&C)) {
        if let Some(cell) = self.local.get(key.as_str()) {
            update(cell);
        } else if let Some(cell) = self.create(key) {
            update(cell);
        }
    }

    /// Like [`update`](Self::update), but reaches the series through `shortcut`
    /// when it led there before; only then are the labels written (by `labels`, into `key`).
    pub(crate) fn update_via(
        &mut self,
        shortcut: Option<Shortcut<'_>>,
        key: &mut LabelKey,
        labels: impl FnOnce(&mut LabelKey),
        update: impl FnOnce(&C),
    ) {
        if let Some(cell) = shortcut.as_ref().and_then(|s| self.shortcuts.get(s)) {
            update(cell);
            return;
        }
        key.clear();
        labels(key);
        let cell = match self.local.get(key.as_str()) {
            Some(cell) => Arc::clone(cell),
            None => match self.create(key) {
                Some(cell) => Arc::clone(cell),
                None => return,
            },
        };
        update(&cell);
        if let Some(shortcut) = shortcut {
            self.shortcuts.insert(&shortcut, cell);
        }
    }

    /// A new series for `key` (not in the family), when the family is below its limit.
    fn create(&mut self, key: &LabelKey) -> Option<&Arc<C>> {
        debug_assert_eq!(
            key.value_count(),
            self.published.label_names.len(),
            "{}: label values do not match the label names",
            self.published.name
        );
        if self.local.len() >= self.max_series {
            self.published.limited.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let cell = Arc::new(C::new_cell(self.published.buckets));
        let owned: Box<str> = key.as_str().into();
        self.published.series().insert(owned.clone(), Arc::clone(&cell));
        Some(self.local.entry(owned).or_insert(cell))
    }

    /// Drops every series whose label values `doomed` selects.
    pub(crate) fn remove_where(&mut self, mut doomed: impl FnMut(&[&'static str], &str) -> bool) -> usize {
        let names = self.published.label_names.clone();
        let mut removed = FxHashSet::default();
        self.local.retain(|key, cell| {
            let keep = !doomed(&names, key);
            if !keep {
                removed.insert(Arc::as_ptr(cell) as usize);
            }
            keep
        });
        self.shortcuts.forget(&removed);
        if !removed.is_empty() {
            let local = &self.local;
            self.published.series().retain(|key, _| local.contains_key(key));
        }
        removed.len()
    }

    /// How many shortcuts lead to this family's series (for tests).
    pub(crate) fn shortcut_count(&self) -> usize {
        self.shortcuts.len()
    }
}

impl CounterCell {
    /// Only the pipeline thread writes (see [`Family`]): a plain load and store is
    /// enough and avoids a locked read-modify-write per flow and handler.
    pub(crate) fn bump(&self) {
        self.0.store(self.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

impl CounterFamily {
    pub(crate) fn inc(&mut self, key: &LabelKey) {
        self.update(key, CounterCell::bump);
    }

    /// Counts into the series `shortcut` leads to, or the one `labels` writes.
    pub(crate) fn inc_via(
        &mut self,
        shortcut: Option<Shortcut<'_>>,
        key: &mut LabelKey,
        labels: impl FnOnce(&mut LabelKey),
    ) {
        self.update_via(shortcut, key, labels, CounterCell::bump);
    }
}

impl HistogramFamily {
    pub(crate) fn observe(&mut self, key: &LabelKey, value: f64) {
        let bounds = self.published.buckets;
        self.update(key, |cell| cell.observe(bounds, value));
    }
}

impl<C: Cell> Published<C> {}
