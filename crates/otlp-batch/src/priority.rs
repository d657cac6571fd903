//! Priority batching: a caller-supplied classifier puts each item (span, metric, log
//! record) in a class; each class batches on its own; ready batches leave most important
//! first; and when the items held exceed a bound, the least important are dropped first.

use std::time::Duration;

use otlp_model::SignalRequest;

use crate::policy::BatchPolicy;
use crate::{BatchConfig, Batcher};

/// A classifier: class 0 is the most important; classes at or past the number of classes
/// count as the last one.
pub type Classifier<R> = Box<dyn Fn(&<R as SignalRequest>::Item) -> usize + Send>;

/// Batching by class. See the module documentation.
pub struct Prioritized<R: SignalRequest> {
    classes: Vec<Batcher<R>>,
    classify: Classifier<R>,
    /// Most items held across all classes before the lowest classes are dropped.
    max_pending_items: usize,
    dropped: usize,
}

impl<R: SignalRequest> std::fmt::Debug for Prioritized<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prioritized")
            .field("classes", &self.classes.len())
            .field("max_pending_items", &self.max_pending_items)
            .finish()
    }
}

impl<R: SignalRequest> Prioritized<R> {
    /// `classes` classes batched with `config` each, holding at most `max_pending_items`
    /// across classes.
    pub fn new(
        classes: usize,
        config: BatchConfig,
        max_pending_items: usize,
        classify: impl Fn(&R::Item) -> usize + Send + 'static,
    ) -> Self {
        Self {
            classes: (0..classes.max(1)).map(|_| Batcher::new(config)).collect(),
            classify: Box::new(classify),
            max_pending_items,
            dropped: 0,
        }
    }

    /// Items pending per class.
    pub fn pending(&self) -> Vec<usize> {
        self.classes.iter().map(Batcher::pending_items).collect()
    }

    /// Drops whole pending batches from the least important class up until the bound holds.
    fn enforce_bound(&mut self) {
        let mut total: usize = self.classes.iter().map(Batcher::pending_items).sum();
        for class in self.classes.iter_mut().rev() {
            if total <= self.max_pending_items {
                break;
            }
            if let Some(dropped) = class.flush() {
                let items = dropped.item_count();
                total -= items;
                self.dropped += items;
            }
        }
    }
}

impl<R: SignalRequest> BatchPolicy<R> for Prioritized<R> {
    fn push(&mut self, request: R, now: Duration) -> Vec<R> {
        let last = self.classes.len() - 1;
        let mut rest = request;
        let mut ready = Vec::new();
        for class in 0..=last {
            let part = if class == last {
                std::mem::take(&mut rest)
            } else {
                let classify = &self.classify;
                let (mine, others) = rest.partition(|item| classify(item).min(last) == class);
                rest = others;
                mine
            };
            if !part.is_empty() {
                ready.extend(self.classes[class].push(part, now));
            }
        }
        self.enforce_bound();
        ready
    }

    fn deadline(&self) -> Option<Duration> {
        self.classes.iter().filter_map(Batcher::deadline).min()
    }

    fn expire(&mut self, now: Duration) -> Vec<R> {
        self.classes
            .iter_mut()
            .filter_map(|c| c.expire(now))
            .collect()
    }

    fn flush_all(&mut self) -> Vec<R> {
        self.classes.iter_mut().filter_map(Batcher::flush).collect()
    }

    fn take_dropped(&mut self) -> usize {
        std::mem::take(&mut self.dropped)
    }
}
