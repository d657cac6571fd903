//! Splitting requests into requests of at most N items.
//!
//! All three signals share one shape: resource groups that hold scope groups that hold
//! items. The splitter walks that shape once, moving items (never cloning them) into the
//! current chunk and cloning only the resource and scope *headers* when a group continues
//! into the next chunk. For metrics the item is a data point, so a metric whose points do
//! not fit is itself split, keeping its name, unit, kind and temporality.

use std::mem;

use crate::logs::{LogRecord, ResourceLogs, ScopeLogs};
use crate::metrics::{Metric, ResourceMetrics, ScopeMetrics, metric::Data};
use crate::trace::{ResourceSpans, ScopeSpans, Span};

/// A level of the resource -> scope -> item hierarchy.
pub(crate) trait Group: Sized {
    /// What the group holds.
    type Child;
    /// The children, for moving in and out.
    fn children(&mut self) -> &mut Vec<Self::Child>;
    /// A copy of everything but the children.
    fn header(&self) -> Self;
    /// Whether two groups describe the same resource or scope (children ignored).
    fn same_header(&self, other: &Self) -> bool;
}

/// A leaf of the hierarchy: a span, a log record or a metric (which holds data points).
pub(crate) trait Item: Sized {
    /// How many OTLP items this counts as.
    fn weight(&self) -> usize;
    /// Cuts the item into parts of `first`, then `max`, `max`, ... items (the last part
    /// holds what is left), in one pass; only called with `0 < first < weight()` and
    /// `first <= max`.
    fn split_pieces(self, first: usize, max: usize) -> Vec<Self>;
    /// Appends `next` to `self` when they are two parts of one item, else hands it back.
    fn join(&mut self, next: Self) -> Result<(), Self> {
        Err(next)
    }
}

macro_rules! group {
    ($group:ty, $children:ident: $child:ty, $header:ident) => {
        impl Group for $group {
            type Child = $child;
            fn children(&mut self) -> &mut Vec<$child> {
                &mut self.$children
            }
            fn header(&self) -> Self {
                Self {
                    $header: self.$header.clone(),
                    schema_url: self.schema_url.clone(),
                    $children: Vec::new(),
                }
            }
            fn same_header(&self, other: &Self) -> bool {
                self.$header == other.$header && self.schema_url == other.schema_url
            }
        }
    };
}

group!(ResourceSpans, scope_spans: ScopeSpans, resource);
group!(ScopeSpans, spans: Span, scope);
group!(ResourceLogs, scope_logs: ScopeLogs, resource);
group!(ScopeLogs, log_records: LogRecord, scope);
group!(ResourceMetrics, scope_metrics: ScopeMetrics, resource);
group!(ScopeMetrics, metrics: Metric, scope);

impl Item for Span {
    fn weight(&self) -> usize {
        1
    }
    fn split_pieces(self, _first: usize, _max: usize) -> Vec<Self> {
        vec![self]
    }
}

impl Item for LogRecord {
    fn weight(&self) -> usize {
        1
    }
    fn split_pieces(self, _first: usize, _max: usize) -> Vec<Self> {
        vec![self]
    }
}

/// The number of data points of a metric.
pub(crate) fn data_point_count(metric: &Metric) -> usize {
    match &metric.data {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(e)) => e.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    }
}

/// A metric with everything but its data points.
fn metric_header(metric: &Metric) -> Metric {
    let data = metric.data.as_ref().map(|data| match data {
        Data::Gauge(_) => Data::Gauge(Default::default()),
        Data::Sum(s) => Data::Sum(crate::metrics::Sum {
            data_points: Vec::new(),
            aggregation_temporality: s.aggregation_temporality,
            is_monotonic: s.is_monotonic,
        }),
        Data::Histogram(h) => Data::Histogram(crate::metrics::Histogram {
            data_points: Vec::new(),
            aggregation_temporality: h.aggregation_temporality,
        }),
        Data::ExponentialHistogram(e) => {
            Data::ExponentialHistogram(crate::metrics::ExponentialHistogram {
                data_points: Vec::new(),
                aggregation_temporality: e.aggregation_temporality,
            })
        }
        Data::Summary(_) => Data::Summary(Default::default()),
    });
    Metric {
        name: metric.name.clone(),
        description: metric.description.clone(),
        unit: metric.unit.clone(),
        metadata: metric.metadata.clone(),
        data,
    }
}

impl Item for Metric {
    fn weight(&self) -> usize {
        data_point_count(self)
    }

    fn split_pieces(self, first: usize, max: usize) -> Vec<Self> {
        let header = metric_header(&self);
        // Each arm moves the points out once and cuts them in one pass: a metric with
        // millions of points costs linear time, not a shift of the rest per part.
        macro_rules! pieces {
            ($variant:ident, $data:expr) => {
                chunks($data.data_points, first, max)
                    .into_iter()
                    .map(|points| {
                        let mut piece = header.clone();
                        if let Some(Data::$variant(data)) = &mut piece.data {
                            data.data_points = points;
                        }
                        piece
                    })
                    .collect()
            };
        }
        match self.data {
            Some(Data::Gauge(data)) => pieces!(Gauge, data),
            Some(Data::Sum(data)) => pieces!(Sum, data),
            Some(Data::Histogram(data)) => pieces!(Histogram, data),
            Some(Data::ExponentialHistogram(data)) => pieces!(ExponentialHistogram, data),
            Some(Data::Summary(data)) => pieces!(Summary, data),
            // A metric without data has weight 0 and is never split.
            None => vec![header],
        }
    }

    fn join(&mut self, mut next: Self) -> Result<(), Self> {
        if metric_header(self) != metric_header(&next) {
            return Err(next);
        }
        match (&mut self.data, &mut next.data) {
            (Some(Data::Gauge(a)), Some(Data::Gauge(b))) => {
                a.data_points.append(&mut b.data_points)
            }
            (Some(Data::Sum(a)), Some(Data::Sum(b))) => a.data_points.append(&mut b.data_points),
            (Some(Data::Histogram(a)), Some(Data::Histogram(b))) => {
                a.data_points.append(&mut b.data_points)
            }
            (Some(Data::ExponentialHistogram(a)), Some(Data::ExponentialHistogram(b))) => {
                a.data_points.append(&mut b.data_points)
            }
            (Some(Data::Summary(a)), Some(Data::Summary(b))) => {
                a.data_points.append(&mut b.data_points)
            }
            // Two data-less metrics with the same header: keep both, they are distinct entries.
            _ => return Err(next),
        }
        Ok(())
    }
}

/// `items` cut into vectors of `first`, then `max`, `max`, ... elements, in one pass.
fn chunks<T>(items: Vec<T>, first: usize, max: usize) -> Vec<Vec<T>> {
    let mut rest = items.into_iter();
    let mut out = Vec::new();
    let mut size = first.max(1);
    loop {
        let chunk: Vec<T> = rest.by_ref().take(size).collect();
        if chunk.is_empty() {
            return out;
        }
        out.push(chunk);
        size = max.max(1);
    }
}

/// Cuts resource groups into chunks of at most `max` items (`max` of 0 is taken as 1).
///
/// Items keep their order; a group whose items span two chunks appears in both, with the
/// same header. Groups without items are kept, in the chunk where they occur.
pub(crate) fn split_groups<R, S, I>(groups: Vec<R>, max: usize) -> Vec<Vec<R>>
where
    R: Group<Child = S>,
    S: Group<Child = I>,
    I: Item,
{
    let mut chunker = Chunker {
        max: max.max(1),
        room: max.max(1),
        current: Vec::new(),
        chunks: Vec::new(),
    };
    for mut resource in groups {
        let scopes = mem::take(resource.children());
        let resource_was_empty = scopes.is_empty();
        let mut open_resource = resource;
        for mut scope in scopes {
            let items = mem::take(scope.children());
            let scope_was_empty = items.is_empty();
            let mut open_scope = scope;
            for item in items {
                let weight = item.weight();
                // weight > room >= 1: the item is a metric with more points than fit.
                let pieces = if weight <= chunker.room {
                    vec![item]
                } else {
                    item.split_pieces(chunker.room, chunker.max)
                };
                for piece in pieces {
                    chunker.room -= piece.weight();
                    open_scope.children().push(piece);
                    if chunker.room == 0 {
                        chunker.flush(&mut open_resource, &mut open_scope);
                    }
                }
            }
            if scope_was_empty || !open_scope.children().is_empty() {
                open_resource.children().push(open_scope);
            }
        }
        if resource_was_empty || !open_resource.children().is_empty() {
            chunker.current.push(open_resource);
        }
    }
    if !chunker.current.is_empty() {
        chunker.chunks.push(chunker.current);
    }
    chunker.chunks
}

struct Chunker<R> {
    max: usize,
    room: usize,
    current: Vec<R>,
    chunks: Vec<Vec<R>>,
}

impl<R> Chunker<R> {
    /// Closes the current chunk with the open groups; they continue, as header copies,
    /// in the next one.
    fn flush<S: Group>(&mut self, open_resource: &mut R, open_scope: &mut S)
    where
        R: Group<Child = S>,
    {
        let next_scope = open_scope.header();
        let next_resource = open_resource.header();
        let full_scope = mem::replace(open_scope, next_scope);
        let mut full_resource = mem::replace(open_resource, next_resource);
        full_resource.children().push(full_scope);
        self.current.push(full_resource);
        self.chunks.push(mem::take(&mut self.current));
        self.room = self.max;
    }
}

/// Appends `from` to `into`, coalescing groups with the same resource (and scope) so that
/// a merged request is no bigger than it needs to be.
pub(crate) fn merge_groups<R, S, I>(into: &mut Vec<R>, from: Vec<R>)
where
    R: Group<Child = S>,
    S: Group<Child = I>,
    I: Item,
{
    for mut resource in from {
        // The group to merge with is usually the last one: search from the end.
        let Some(target) = into.iter_mut().rev().find(|r| r.same_header(&resource)) else {
            into.push(resource);
            continue;
        };
        for mut scope in mem::take(resource.children()) {
            let Some(target_scope) = target
                .children()
                .iter_mut()
                .rev()
                .find(|s| s.same_header(&scope))
            else {
                target.children().push(scope);
                continue;
            };
            let mut items = mem::take(scope.children()).into_iter();
            if let Some(first) = items.next() {
                let leftover = match target_scope.children().last_mut() {
                    Some(last) => last.join(first).err(),
                    None => Some(first),
                };
                target_scope.children().extend(leftover);
            }
            target_scope.children().extend(items);
        }
    }
}

/// Splits groups into those items `keep` selects and the others, keeping each item's
/// resource and scope; groups left empty are not kept on either side.
pub(crate) fn partition_groups<R, S, I>(
    groups: Vec<R>,
    mut keep: impl FnMut(&I) -> bool,
) -> (Vec<R>, Vec<R>)
where
    R: Group<Child = S>,
    S: Group<Child = I>,
{
    let mut kept = Vec::new();
    let mut rest = Vec::new();
    for mut resource in groups {
        let mut kept_resource = resource.header();
        let mut rest_resource = resource.header();
        for mut scope in mem::take(resource.children()) {
            let mut kept_scope = scope.header();
            let mut rest_scope = scope.header();
            for item in mem::take(scope.children()) {
                if keep(&item) {
                    kept_scope.children().push(item);
                } else {
                    rest_scope.children().push(item);
                }
            }
            if !kept_scope.children().is_empty() {
                kept_resource.children().push(kept_scope);
            }
            if !rest_scope.children().is_empty() {
                rest_resource.children().push(rest_scope);
            }
        }
        if !kept_resource.children().is_empty() {
            kept.push(kept_resource);
        }
        if !rest_resource.children().is_empty() {
            rest.push(rest_resource);
        }
    }
    (kept, rest)
}
