//! A signal's export request kept as its protobuf bytes, cut into resource groups, so that
//! batching appends and splits bytes instead of messages.
//!
//! Protobuf repeated fields concatenate: the encoding of a request is the concatenation of
//! its `resource_*` fields, so appending two requests appends their group lists. Splitting
//! keeps every group that fits whole (a slice of the buffer it arrived in) and rebuilds only
//! the group cut at a part boundary: its resource header (the resource and schema URL), then
//! the scope groups with the items that fall in the part, each scope with its own header —
//! all slices of the same buffer, with new keys and lengths, joined when the part is sent.

use std::marker::PhantomData;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use prost::Message;

use super::WireError;
use super::reader::{WireType, fields, len_key_size, put_len_key};
use super::view::ResourceView;
use crate::SignalRequest;
use crate::collector::logs::ExportLogsServiceRequest;
use crate::collector::metrics::ExportMetricsServiceRequest;
use crate::collector::trace::ExportTraceServiceRequest;
use crate::metrics::Metric;
use crate::split::{Item, data_point_count};

/// The field number that repeats at every level of all three signals: the request's
/// resource groups, a resource group's scope groups, a scope group's items.
const CHILDREN: u32 = 1;
pub(crate) const SCOPE_GROUPS: u32 = 2;
pub(crate) const ITEMS: u32 = 2;

/// How a signal's items sit in its encoding: the three request types share the resource ->
/// scope -> element shape (with the same field numbers); they differ in what one element
/// (a span, a log record, a metric) counts as.
pub trait WireLayout: SignalRequest {
    /// The field of an element holding its trace id (spans: 1, log records: 9), if any.
    const TRACE_ID_FIELD: Option<u32>;

    /// The items one encoded element holds: 1 for a span or a log record, the data points
    /// of a metric (of its last `data` member, as a decode keeps it).
    fn element_items(element: &[u8]) -> Result<usize, WireError>;

    /// Cuts an element of more than `first` items into encoded pieces of `first`, then
    /// `max`, `max`, ... items, each with its count. Only metrics hold more than one item.
    fn cut_element(
        element: &[u8],
        first: usize,
        max: usize,
    ) -> Result<Vec<(Bytes, usize)>, WireError>;

    /// The message's resource groups, each encoded as a whole field, with its items.
    fn encode_groups(&self) -> Vec<(Bytes, usize)>;
}

/// Encodes each resource group of a request as the field it is in the request.
macro_rules! encode_groups {
    ($groups:expr, $count:expr) => {
        $groups
            .iter()
            .map(|group| {
                let len = group.encoded_len();
                let mut out = Vec::with_capacity(len_key_size(CHILDREN, len) + len);
                put_len_key(&mut out, CHILDREN, len);
                group.encode_raw(&mut out);
                (Bytes::from(out), $count(group))
            })
            .collect()
    };
}

impl WireLayout for ExportTraceServiceRequest {
    const TRACE_ID_FIELD: Option<u32> = Some(1);

    fn encode_groups(&self) -> Vec<(Bytes, usize)> {
        encode_groups!(self.resource_spans, |g: &crate::trace::ResourceSpans| {
            g.scope_spans.iter().map(|s| s.spans.len()).sum::<usize>()
        })
    }

    fn element_items(_element: &[u8]) -> Result<usize, WireError> {
        Ok(1)
    }

    fn cut_element(element: &[u8], _: usize, _: usize) -> Result<Vec<(Bytes, usize)>, WireError> {
        Ok(vec![(Bytes::copy_from_slice(element), 1)])
    }
}

impl WireLayout for ExportLogsServiceRequest {
    const TRACE_ID_FIELD: Option<u32> = Some(9);

    fn encode_groups(&self) -> Vec<(Bytes, usize)> {
        encode_groups!(self.resource_logs, |g: &crate::logs::ResourceLogs| {
            g.scope_logs
                .iter()
                .map(|s| s.log_records.len())
                .sum::<usize>()
        })
    }

    fn element_items(_element: &[u8]) -> Result<usize, WireError> {
        Ok(1)
    }

    fn cut_element(element: &[u8], _: usize, _: usize) -> Result<Vec<(Bytes, usize)>, WireError> {
        Ok(vec![(Bytes::copy_from_slice(element), 1)])
    }
}

/// `Metric.data`'s members: gauge, sum, histogram, exponential histogram, summary. Each is
/// a message whose field 1 is its repeated data points.
const METRIC_DATA: [u32; 5] = [5, 7, 9, 10, 11];
const DATA_POINTS: u32 = 1;

impl WireLayout for ExportMetricsServiceRequest {
    const TRACE_ID_FIELD: Option<u32> = None;

    fn encode_groups(&self) -> Vec<(Bytes, usize)> {
        encode_groups!(
            self.resource_metrics,
            |g: &crate::metrics::ResourceMetrics| {
                g.scope_metrics
                    .iter()
                    .flat_map(|s| &s.metrics)
                    .map(data_point_count)
                    .sum::<usize>()
            }
        )
    }

    fn element_items(element: &[u8]) -> Result<usize, WireError> {
        // A decode keeps the last member of the oneof; repeats of one member merge.
        let (mut member, mut points) = (0, 0);
        for field in fields(element) {
            let field = field?;
            if field.wire_type != WireType::Len || !METRIC_DATA.contains(&field.number) {
                continue;
            }
            let mut count = 0;
            for point in fields(&element[field.value]) {
                let point = point?;
                count +=
                    usize::from(point.number == DATA_POINTS && point.wire_type == WireType::Len);
            }
            if field.number == member {
                points += count;
            } else {
                (member, points) = (field.number, count);
            }
        }
        Ok(points)
    }

    fn cut_element(
        element: &[u8],
        first: usize,
        max: usize,
    ) -> Result<Vec<(Bytes, usize)>, WireError> {
        // Rare (one metric per part boundary), so a decode of that one metric is cheap
        // beside getting the oneof and merge rules right a second time.
        let metric =
            Metric::decode(element).map_err(|e| WireError::new_owned(format!("metric: {e}"), 0))?;
        Ok(metric
            .split_pieces(first, max)
            .into_iter()
            .map(|piece| {
                let items = data_point_count(&piece);
                (Bytes::from(piece.encode_to_vec()), items)
            })
            .collect())
    }
}

/// One resource group: the whole `resource_*` field (key, length and payload).
#[derive(Debug, Clone)]
struct Group {
    bytes: GroupBytes,
    len: usize,
    items: usize,
}

/// A group's encoding: a slice of the buffer it arrived in, or, for a group rebuilt where a
/// split cut it, the pieces it is made of — slices of that buffer (headers, runs of
/// elements) and the few keys and lengths written anew — joined only when the part is
/// sent. So the parts of a cut group share its headers instead of each copying them: a
/// large resource split into many parts costs a few pointers per part, not the resource.
#[derive(Debug, Clone)]
enum GroupBytes {
    Whole(Bytes),
    Pieces(Vec<Bytes>),
}

/// Pieces of [`Encoded::to_pieces`] smaller than this are copied together.
pub const COALESCE_BELOW: usize = 16 * 1024;

/// What [`Encoded::to_pieces`] builds: the pieces so far, and the run of small ones not
/// yet written out (copied together only if there are two or more).
#[derive(Default)]
struct Pieces {
    out: Vec<Bytes>,
    small: Vec<Bytes>,
}

impl Pieces {
    fn add(&mut self, piece: &Bytes) {
        if piece.len() < COALESCE_BELOW {
            self.small.push(piece.clone());
        } else {
            self.flush_small();
            self.out.push(piece.clone());
        }
    }

    fn flush_small(&mut self) {
        match self.small.len() {
            0 => {}
            1 => self.out.append(&mut self.small),
            _ => {
                self.out.push(Bytes::from(self.small.concat()));
                self.small.clear();
            }
        }
    }

    fn finish(mut self) -> Vec<Bytes> {
        self.flush_small();
        self.out
    }
}

impl Group {
    fn whole(bytes: Bytes, items: usize) -> Self {
        Self {
            len: bytes.len(),
            bytes: GroupBytes::Whole(bytes),
            items,
        }
    }

    fn write_to(&self, out: &mut BytesMut) {
        match &self.bytes {
            GroupBytes::Whole(bytes) => out.extend_from_slice(bytes),
            GroupBytes::Pieces(pieces) => pieces.iter().for_each(|p| out.extend_from_slice(p)),
        }
    }

    /// The group as one buffer (a copy only for a rebuilt group).
    fn contiguous(&self) -> Bytes {
        match &self.bytes {
            GroupBytes::Whole(bytes) => bytes.clone(),
            GroupBytes::Pieces(_) => {
                let mut out = BytesMut::with_capacity(self.len);
                self.write_to(&mut out);
                out.freeze()
            }
        }
    }
}

/// A signal's export request as protobuf bytes, split into its resource groups, which
/// batching appends and splits without decoding a message.
///
/// ```
/// use bytes::Bytes;
/// use otlp_model::collector::trace::ExportTraceServiceRequest;
/// use otlp_model::trace::{ResourceSpans, ScopeSpans, Span};
/// use otlp_model::wire::Encoded;
/// use prost::Message;
///
/// let request = ExportTraceServiceRequest {
///     resource_spans: vec![ResourceSpans {
///         scope_spans: vec![ScopeSpans { spans: vec![Span::default(); 5], ..Default::default() }],
///         ..Default::default()
///     }],
/// };
/// let encoded = Encoded::<ExportTraceServiceRequest>::new(Bytes::from(request.encode_to_vec()))?;
/// let parts = encoded.split(2);
/// assert_eq!(parts.iter().map(Encoded::item_count).collect::<Vec<_>>(), [2, 2, 1]);
/// assert_eq!(parts[2].decode()?.resource_spans[0].scope_spans[0].spans.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Encoded<R> {
    groups: Vec<Group>,
    items: usize,
    len: usize,
    signal: PhantomData<fn() -> R>,
}

impl<R> Clone for Encoded<R> {
    fn clone(&self) -> Self {
        Self {
            groups: self.groups.clone(),
            items: self.items,
            len: self.len,
            signal: PhantomData,
        }
    }
}

impl<R> Default for Encoded<R> {
    fn default() -> Self {
        Self {
            groups: Vec::new(),
            items: 0,
            len: 0,
            signal: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for Encoded<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoded")
            .field("groups", &self.groups.len())
            .field("items", &self.items)
            .field("len", &self.len)
            .finish()
    }
}

impl<R: WireLayout> Encoded<R> {
    /// Reads the resource groups of an encoded export request and counts their items.
    ///
    /// This walks the framing down to the elements (spans, log records, metrics' data
    /// fields) and does not check what it skips: pass bytes that were validated (as
    /// receivers do before `ExportRequest::from_encoded`). Fields of the request other than
    /// its resource groups are unknown to OTLP and are left out.
    pub fn new(bytes: Bytes) -> Result<Self, WireError> {
        let mut encoded = Self::default();
        for field in fields(&bytes) {
            let field = field?;
            if field.number != CHILDREN || field.wire_type != WireType::Len {
                continue;
            }
            let items = group_items::<R>(&bytes[field.value.clone()])?;
            encoded.push(Group::whole(bytes.slice(field.whole), items));
        }
        Ok(encoded)
    }

    /// The encoding of `message`, grouped the same way.
    pub fn from_message(message: &R) -> Self {
        let mut encoded = Self::default();
        for (bytes, items) in message.encode_groups() {
            encoded.push(Group::whole(bytes, items));
        }
        encoded
    }

    /// Spans, data points or log records held.
    pub fn item_count(&self) -> usize {
        self.items
    }

    /// Whether no item is held (empty groups may be).
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The size of [`Encoded::to_bytes`]'s output.
    pub fn encoded_len(&self) -> usize {
        self.len
    }

    /// The request's encoding: its groups, one after the other (no copy for a single group
    /// as it arrived; a group rebuilt by a split is joined here).
    pub fn to_bytes(&self) -> Bytes {
        if let [group] = self.groups.as_slice() {
            return group.contiguous();
        }
        let mut out = BytesMut::with_capacity(self.len);
        for group in &self.groups {
            group.write_to(&mut out);
        }
        out.freeze()
    }

    /// The request's encoding as consecutive pieces that a transport writes one after the
    /// other: slices of the buffers the groups arrived in, not copied, except that runs of
    /// two or more pieces smaller than [`COALESCE_BELOW`] are copied together (a batch of
    /// many small requests is then a few pieces, not thousands).
    pub fn to_pieces(&self) -> Vec<Bytes> {
        let mut pieces = Pieces::default();
        for group in &self.groups {
            match &group.bytes {
                GroupBytes::Whole(bytes) => pieces.add(bytes),
                GroupBytes::Pieces(parts) => parts.iter().for_each(|part| pieces.add(part)),
            }
        }
        pieces.finish()
    }

    /// The request as an owned message.
    pub fn decode(&self) -> Result<R, prost::DecodeError> {
        let mut message = R::default();
        for group in &self.groups {
            Message::merge(&mut message, group.contiguous())?;
        }
        Ok(message)
    }

    /// The resource groups, for reading routing fields without a decode.
    pub fn resources(&self) -> impl Iterator<Item = ResourceView<R>> + '_ {
        self.groups.iter().filter_map(|group| {
            let bytes = group.contiguous();
            let field = fields(&bytes).next()?.ok()?;
            Some(ResourceView::new(bytes.slice(field.value)))
        })
    }

    /// Appends the groups of `other`: O(its groups), nothing is copied.
    pub fn append(&mut self, other: Self) {
        self.groups.reserve(other.groups.len());
        for group in other.groups {
            self.push(group);
        }
    }

    fn push(&mut self, group: Group) {
        self.items += group.items;
        self.len += group.len;
        self.groups.push(group);
    }

    /// Splits into requests of at most `max_items` items each (`0` is taken as `1`),
    /// keeping item order and each item's resource and scope, in time linear in the size.
    /// A request of no more items is returned as it is.
    ///
    /// Bytes that [`Encoded::new`] accepted but that are malformed deeper down (they were not
    /// validated) are an error.
    pub fn try_split(self, max_items: usize) -> Result<Vec<Self>, WireError> {
        let max = max_items.max(1);
        if self.items <= max {
            return Ok(vec![self]);
        }
        let mut cutter = Cutter {
            max,
            parts: Vec::with_capacity(self.items.div_ceil(max) + 1),
            current: Self::default(),
        };
        for group in self.groups {
            if group.items <= cutter.room() {
                cutter.add(group);
            } else {
                cutter.cut::<R>(&group.contiguous())?;
            }
        }
        cutter.finish();
        Ok(cutter.parts)
    }

    /// [`Encoded::try_split`], falling back to a decode and the owned splitter where the
    /// bytes cut (a metric across a boundary) do not decode as they should; bytes that do
    /// not decode at all come back whole, as one part, for the exporter's peer to refuse
    /// (and the pipeline to count). Receivers validate before this, so that is a library
    /// user's `ExportRequest::from_encoded` of bytes it did not check.
    pub fn split(self, max_items: usize) -> Vec<Self> {
        let whole = self.clone();
        match self.try_split(max_items) {
            Ok(parts) => parts,
            Err(_) => match whole.decode() {
                Ok(message) => SignalRequest::split(message, max_items)
                    .iter()
                    .map(Self::from_message)
                    .collect(),
                Err(_) => vec![whole],
            },
        }
    }
}

/// Items in one resource group's payload.
pub(crate) fn group_items<R: WireLayout>(resource: &[u8]) -> Result<usize, WireError> {
    let mut items = 0;
    for scope in children(resource, SCOPE_GROUPS) {
        let scope = &resource[scope?];
        for element in children(scope, ITEMS) {
            items += R::element_items(&scope[element?])?;
        }
    }
    Ok(items)
}

/// The payloads of the length-delimited fields `number` of a message.
pub(crate) fn children(
    message: &[u8],
    number: u32,
) -> impl Iterator<Item = Result<Range<usize>, WireError>> {
    fields(message).filter_map(move |field| match field {
        Ok(field) if field.number == number && field.wire_type == WireType::Len => {
            Some(Ok(field.value))
        }
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    })
}

/// A group's header as it is repeated in every part the group is cut into: its known
/// fields other than the children (the resource or scope, 1, and the schema URL, 3), as
/// they are. Unknown fields are left out, as a decode drops them, so that a large unknown
/// field is not copied into every part.
fn header(message: &Bytes) -> Result<Vec<Bytes>, WireError> {
    const HEADER_FIELDS: [u32; 2] = [1, 3];
    let mut out = Vec::new();
    for field in fields(message) {
        let field = field?;
        if HEADER_FIELDS.contains(&field.number) {
            out.push(message.slice(field.whole));
        }
    }
    Ok(out)
}

/// A scope group being rebuilt: its header and the elements that fall in the part, as
/// runs of whole element fields of the scope's buffer (adjacent elements make one run) or
/// pieces of a cut metric written anew.
struct ScopePiece {
    scope: Bytes,
    header: Vec<Bytes>,
    runs: Vec<Run>,
}

enum Run {
    Slice(Range<usize>),
    Written(Bytes),
}

impl ScopePiece {
    fn new(scope: &Bytes, header: &[Bytes]) -> Self {
        Self {
            scope: scope.clone(),
            header: header.to_vec(),
            runs: Vec::new(),
        }
    }

    /// Adds the whole element field at `range` of the scope's buffer.
    fn push_slice(&mut self, range: Range<usize>) {
        if let Some(Run::Slice(last)) = self.runs.last_mut()
            && last.end == range.start
        {
            last.end = range.end;
            return;
        }
        self.runs.push(Run::Slice(range));
    }

    /// Adds an element encoded anew (a piece of a cut metric), with its key and length.
    fn push_written(&mut self, element: &[u8]) {
        let mut field = Vec::with_capacity(len_key_size(ITEMS, element.len()) + element.len());
        put_len_key(&mut field, ITEMS, element.len());
        field.extend_from_slice(element);
        self.runs.push(Run::Written(Bytes::from(field)));
    }

    fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The pieces of the scope's payload.
    fn pieces(&self) -> impl Iterator<Item = Bytes> + '_ {
        self.header
            .iter()
            .cloned()
            .chain(self.runs.iter().map(|run| match run {
                Run::Slice(range) => self.scope.slice(range.clone()),
                Run::Written(bytes) => bytes.clone(),
            }))
    }
}

/// Fills parts of `max` items from whole groups and from the groups cut at boundaries.
struct Cutter<R> {
    max: usize,
    parts: Vec<Encoded<R>>,
    current: Encoded<R>,
}

impl<R: WireLayout> Cutter<R> {
    fn room(&self) -> usize {
        self.max - self.current.items
    }

    fn add(&mut self, group: Group) {
        self.current.push(group);
        if self.current.items == self.max {
            self.close_part();
        }
    }

    fn close_part(&mut self) {
        if !self.current.groups.is_empty() {
            self.parts.push(std::mem::take(&mut self.current));
        }
    }

    fn finish(&mut self) {
        // Groups without items after the last full part stay with it.
        if self.current.items == 0
            && let Some(last) = self.parts.last_mut()
        {
            last.append(std::mem::take(&mut self.current));
        }
        self.close_part();
    }

    /// Cuts one resource group (the whole field) across as many parts as it needs.
    fn cut<L: WireLayout>(&mut self, group: &Bytes) -> Result<(), WireError> {
        let field = fields(group)
            .next()
            .ok_or(WireError::new("empty resource group", 0))??;
        let resource = group.slice(field.value);
        let resource_header = header(&resource)?;
        // The scope pieces of the resource piece being filled, and its items.
        let mut scopes: Vec<ScopePiece> = Vec::new();
        let mut filled = 0;
        for scope in children(&resource, SCOPE_GROUPS) {
            let scope = resource.slice(scope?);
            let scope_header = header(&scope)?;
            scopes.push(ScopePiece::new(&scope, &scope_header));
            let mut had_elements = false;
            for element in fields(&scope) {
                let element = element?;
                if element.number != ITEMS || element.wire_type != WireType::Len {
                    continue;
                }
                had_elements = true;
                let items = L::element_items(&scope[element.value.clone()])?;
                let room = self.room() - filled;
                if items <= room {
                    if let Some(last) = scopes.last_mut() {
                        last.push_slice(element.whole);
                    }
                    filled += items;
                    self.close_if_full(&resource_header, &mut scopes, &mut filled);
                } else {
                    for (piece, items) in L::cut_element(&scope[element.value], room, self.max)? {
                        if let Some(last) = scopes.last_mut() {
                            last.push_written(&piece);
                        }
                        filled += items;
                        self.close_if_full(&resource_header, &mut scopes, &mut filled);
                    }
                }
            }
            // A scope reopened after the last cut without elements is left out; a scope
            // that had no elements at all is kept where it was.
            if scopes.last().is_some_and(ScopePiece::is_empty) && had_elements {
                scopes.pop();
            }
        }
        if !scopes.is_empty() {
            self.close_resource(&resource_header, scopes, filled);
            if self.current.items == self.max {
                self.close_part();
            }
        }
        Ok(())
    }

    /// When the part is full: closes the resource piece into it, closes it, and reopens
    /// the scope being read (same headers) for the next part.
    fn close_if_full(
        &mut self,
        header: &[Bytes],
        scopes: &mut Vec<ScopePiece>,
        filled: &mut usize,
    ) {
        if *filled != self.room() {
            return;
        }
        let reopened = scopes
            .last()
            .map(|open| ScopePiece::new(&open.scope, &open.header));
        self.close_resource(header, std::mem::take(scopes), *filled);
        *filled = 0;
        self.close_part();
        scopes.extend(reopened);
    }

    /// Adds a resource group of `header` and `scopes` to the current part, as pieces that
    /// share the buffers they came from.
    fn close_resource(&mut self, header: &[Bytes], scopes: Vec<ScopePiece>, items: usize) {
        let mut pieces = Vec::with_capacity(2 + header.len() + 3 * scopes.len());
        pieces.push(Bytes::new()); // the group's key and length, once known
        let mut payload_len: usize = header.iter().map(Bytes::len).sum();
        pieces.extend(header.iter().cloned());
        for scope in &scopes {
            let body: Vec<Bytes> = scope.pieces().collect();
            let len: usize = body.iter().map(Bytes::len).sum();
            let mut key = Vec::with_capacity(len_key_size(SCOPE_GROUPS, len));
            put_len_key(&mut key, SCOPE_GROUPS, len);
            payload_len += key.len() + len;
            pieces.push(Bytes::from(key));
            pieces.extend(body);
        }
        let mut key = Vec::with_capacity(len_key_size(CHILDREN, payload_len));
        put_len_key(&mut key, CHILDREN, payload_len);
        let len = key.len() + payload_len;
        pieces[0] = Bytes::from(key);
        self.current.push(Group {
            bytes: GroupBytes::Pieces(pieces),
            len,
            items,
        });
    }
}
