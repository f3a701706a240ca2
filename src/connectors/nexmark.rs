//! The `nexmark` connector: a source of the Nexmark benchmark's auction events (people put items
//! up for auction, other people bid on them), one combined stream with the columns of Flink's
//! Nexmark table: `event_type INT` (0 person, 1 auction, 2 bid) and `person`, `auction`, `bid` as
//! `ROW<...>` columns (Arrow structs), exactly one of them non-NULL per row.
//!
//! The generator is Weir's own implementation of the benchmark's model:
//!
//! - event `n` is a person, an auction or a bid by `n mod (p + a + b)` for the proportions
//!   (`person.proportion` : `auction.proportion` : `bid.proportion`, 1 : 3 : 46 by default);
//! - people and auctions get consecutive ids from 1000; an auction's seller and a bid's bidder
//!   are recent people, a bid's auction a recent auction, with "hot" sellers, bidders and
//!   auctions (most picks go to a few ids);
//! - event `n`'s time is a fixed base time (2015-07-15 00:00:00 UTC) plus the inter-event delays
//!   of the events before it, from `first-event.rate` / `next-event.rate` events per second
//!   (alternating every `rate.period` for the `square` shape);
//! - every other field comes from a pseudo-random generator seeded by the event's number.
//!
//! So the events (including their timestamps) depend only on the options: a bounded table
//! (`events.num`) gives the same rows in batch and in streaming mode, whatever the partitioning.
//! Without `events.num` the source never ends and emits events at their rate in wall-clock time.
//!
//! Events are made lazily in batches by a [`StreamExec`]; event numbers are split into
//! contiguous ranges across partitions (bounded) or interleaved blocks (unbounded).

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    Array, ArrayRef, Int32Array, Int64Builder, RecordBatch, RecordBatchOptions, StringBuilder,
    StructArray, TimestampMillisecondBuilder,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use super::options::ConnectorOptions;
use super::stream_exec::StreamExec;
use crate::catalog::TableDef;
use crate::error::{Error, Result};

const OPTIONS: &[&str] = &[
    "events.num",
    "first-event.rate",
    "next-event.rate",
    "rate.shape",
    "rate.period",
    "rate.limited",
    "max-emit-speed",
    "person.proportion",
    "auction.proportion",
    "bid.proportion",
    "person.avg-size",
    "auction.avg-size",
    "bid.avg-size",
];

/// 2015-07-15 00:00:00 UTC, in ms: the time of event 0.
pub(crate) const BASE_TIME_MS: i64 = 1_436_918_400_000;
const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: u64 = 5;
/// How many of the latest people / auctions are "active" (picked as sellers, bidders, lots).
const ACTIVE_PEOPLE: u64 = 1000;
const IN_FLIGHT_AUCTIONS: u64 = 100;
/// Hot ids are the multiples of `HOT_STEP` (the newest one below the newest id).
const HOT_STEP: i64 = 100;
/// Of every `n` picks, one is uniform among the active ids and `n - 1` go to the hot id.
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_SELLER_RATIO: u64 = 4;
const HOT_BIDDER_RATIO: u64 = 4;
const BATCH_SIZE: u64 = 4096;
/// Partitions of a bounded scan (at most; fewer when there are few events).
const MAX_PARTITIONS: u64 = 4;

const FIRST_NAMES: &[&str] = &[
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: &[&str] = &[
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const STATES: &[&str] = &["AZ", "CA", "ID", "OR", "WA", "WY"];
const CITIES: &[&str] = &[
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const CHANNELS: &[&str] = &["Google", "Facebook", "Baidu", "Apple"];

/// The generator's columns: name (lower case) and type of each field of each event kind.
const PERSON_FIELDS: &[&str] = &[
    "id",
    "name",
    "emailaddress",
    "creditcard",
    "city",
    "state",
    "datetime",
    "extra",
];
const AUCTION_FIELDS: &[&str] = &[
    "id",
    "itemname",
    "description",
    "initialbid",
    "reserve",
    "datetime",
    "expires",
    "seller",
    "category",
    "extra",
];
const BID_FIELDS: &[&str] = &[
    "auction", "bidder", "price", "channel", "url", "datetime", "extra",
];

/// The generator's parameters, from the table's options.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NexmarkConfig {
    pub events: Option<u64>,
    pub first_rate: u64,
    pub next_rate: u64,
    /// `square` shape: the rate alternates between the two every `period`.
    pub period: Duration,
    pub person: u64,
    pub auction: u64,
    pub bid: u64,
    pub person_size: usize,
    pub auction_size: usize,
    pub bid_size: usize,
    /// Emit events at their rate in wall-clock time (default: only when unbounded).
    pub paced: bool,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            events: None,
            first_rate: 10_000,
            next_rate: 10_000,
            period: Duration::from_secs(600),
            person: 1,
            auction: 3,
            bid: 46,
            person_size: 200,
            auction_size: 500,
            bid_size: 100,
            paced: true,
        }
    }
}

impl NexmarkConfig {
    fn total(&self) -> u64 {
        self.person + self.auction + self.bid
    }

    /// 0 person, 1 auction, 2 bid.
    fn kind(&self, n: u64) -> i32 {
        let offset = n % self.total();
        if offset < self.person {
            0
        } else if offset < self.person + self.auction {
            1
        } else {
            2
        }
    }

    /// People generated by events `0..n`.
    fn people_before(&self, n: u64) -> u64 {
        let (epoch, offset) = (n / self.total(), n % self.total());
        epoch * self.person + offset.min(self.person)
    }

    /// Auctions generated by events `0..n`.
    fn auctions_before(&self, n: u64) -> u64 {
        let (epoch, offset) = (n / self.total(), n % self.total());
        epoch * self.auction + offset.saturating_sub(self.person).min(self.auction)
    }

    /// Event `n`'s time in microseconds after the base time.
    fn offset_us(&self, n: u64) -> u128 {
        let period_us = self.period.as_micros().max(1);
        if self.first_rate == self.next_rate {
            return n as u128 * 1_000_000 / self.first_rate as u128;
        }
        let first = (self.first_rate as u128 * period_us / 1_000_000).max(1);
        let next = (self.next_rate as u128 * period_us / 1_000_000).max(1);
        let (cycles, r) = (n as u128 / (first + next), n as u128 % (first + next));
        let within = if r < first {
            r * 1_000_000 / self.first_rate as u128
        } else {
            period_us + (r - first) * 1_000_000 / self.next_rate as u128
        };
        cycles * 2 * period_us + within
    }

    /// Event `n`'s timestamp (ms since the epoch).
    fn timestamp(&self, n: u64) -> i64 {
        BASE_TIME_MS.saturating_add(i64::try_from(self.offset_us(n) / 1000).unwrap_or(i64::MAX))
    }

    /// How long an auction stays open: around the time of the events that open the next
    /// `IN_FLIGHT_AUCTIONS` auctions.
    fn auction_horizon_ms(&self) -> i64 {
        let events = IN_FLIGHT_AUCTIONS * self.total() / self.auction.max(1);
        let rate = self.first_rate.min(self.next_rate).max(1);
        ((events as u128 * 1000 / rate as u128) as i64).max(1)
    }
}

/// Parses and checks a nexmark table's options and columns.
pub(crate) fn parse(o: &ConnectorOptions, def: &TableDef) -> Result<NexmarkConfig> {
    o.check_known(&super::options::source_options(OPTIONS), |_| Ok(false))?;
    let d = NexmarkConfig::default();
    let positive = |key: &str, default: u64| -> Result<u64> {
        match o.u64(key)? {
            None => Ok(default),
            Some(0) => Err(o.bad_value(key, "0", "expected a positive integer")),
            Some(v) => Ok(v),
        }
    };
    let events = o.u64("events.num")?;
    let first_rate = positive("first-event.rate", d.first_rate)?;
    let next_rate = positive("next-event.rate", first_rate)?;
    match o.get("rate.shape").map(|s| s.trim().to_ascii_lowercase()) {
        None => {}
        Some(s) if s == "square" => {}
        Some(s) if s == "sine" => {
            return Err(Error::not_supported(format!(
                "'rate.shape' = 'sine' of {} is not supported yet (use 'square')",
                o.describe()
            )));
        }
        Some(s) => return Err(o.bad_value("rate.shape", &s, "valid shapes: square, sine")),
    }
    let period = o.duration("rate.period")?.unwrap_or(d.period);
    if period.is_zero() {
        return Err(o.bad_value("rate.period", "0", "expected a positive duration"));
    }
    let person = o.u64("person.proportion")?.unwrap_or(d.person);
    let auction = o.u64("auction.proportion")?.unwrap_or(d.auction);
    let bid = o.u64("bid.proportion")?.unwrap_or(d.bid);
    if person + auction + bid == 0 {
        return Err(Error::invalid(format!(
            "the proportions of {} add up to 0",
            o.describe()
        )));
    }
    let size = |key: &str, default: usize| -> Result<usize> {
        Ok(o.u64(key)?
            .map(|v| usize::try_from(v).unwrap_or(usize::MAX).min(1 << 20))
            .unwrap_or(default))
    };
    let max_speed = o.bool("max-emit-speed", false)?;
    let paced = o.bool("rate.limited", events.is_none())? && !max_speed;
    check_columns(o, def)?;
    Ok(NexmarkConfig {
        events,
        first_rate,
        next_rate,
        period,
        person,
        auction,
        bid,
        person_size: size("person.avg-size", d.person_size)?,
        auction_size: size("auction.avg-size", d.auction_size)?,
        bid_size: size("bid.avg-size", d.bid_size)?,
        paced,
    })
}

/// The generator fields a ROW column of kind `column` has.
fn kind_fields(column: &str) -> Option<&'static [&'static str]> {
    match column {
        "person" => Some(PERSON_FIELDS),
        "auction" => Some(AUCTION_FIELDS),
        "bid" => Some(BID_FIELDS),
        _ => None,
    }
}

fn check_columns(o: &ConnectorOptions, def: &TableDef) -> Result<()> {
    for (column, ty, _) in def.physical_columns() {
        let name = column.name.to_ascii_lowercase();
        let data_type = ty.to_arrow();
        if name == "event_type" {
            if !data_type.is_integer() {
                return Err(Error::invalid(format!(
                    "column `event_type` of {} must be an integer type (INT), not {ty}",
                    o.describe()
                )));
            }
            continue;
        }
        let Some(valid) = kind_fields(&name) else {
            return Err(Error::invalid(format!(
                "column `{}` of {} is not a Nexmark column; valid columns: event_type, person, auction, bid",
                column.name,
                o.describe()
            )));
        };
        let DataType::Struct(fields) = &data_type else {
            return Err(Error::invalid(format!(
                "column `{}` of {} must be a ROW<...> of ({}), not {ty}",
                column.name,
                o.describe(),
                valid.join(", ")
            )));
        };
        for f in fields {
            if !valid.contains(&f.name().to_ascii_lowercase().as_str()) {
                return Err(Error::invalid(format!(
                    "field `{}` of column `{}` of {} is not a Nexmark field; valid fields: {}",
                    f.name(),
                    column.name,
                    o.describe(),
                    valid.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// A small deterministic pseudo-random generator (SplitMix64), seeded per event.
struct EventRng(u64);

impl EventRng {
    fn new(event: u64, salt: u64) -> Self {
        EventRng(
            event.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03),
        )
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn letters(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect()
    }

    /// A price in cents, log-uniform from 1.00 to about 10^6.
    fn price(&mut self) -> i64 {
        (10f64.powf(self.unit() * 6.0) * 100.0).round() as i64
    }

    /// `extra`: letters up to the kind's average size.
    fn extra(&mut self, used: usize, avg: usize) -> String {
        let want = avg.saturating_sub(used);
        if want == 0 {
            return String::new();
        }
        // Between 90% and 110% of what is missing.
        let len = want * 9 / 10 + self.below(want as u64 / 5 + 1) as usize;
        self.letters(len)
    }
}

/// An id among the `count` ids `first..first + count`: `ratio - 1` times in `ratio` the "hot"
/// one (the newest multiple of `HOT_STEP`), else one of the newest `active`.
fn pick_recent(rng: &mut EventRng, first: i64, count: u64, active: u64, ratio: u64) -> i64 {
    if count == 0 {
        return first;
    }
    let newest = first + count as i64 - 1;
    if rng.below(ratio) > 0 {
        return ((newest / HOT_STEP) * HOT_STEP).max(first);
    }
    newest - rng.below(count.min(active)) as i64
}

/// Column builders of one batch of events.
struct Builders {
    event_type: Vec<i32>,
    /// Per kind, per field (in `*_FIELDS` order): the builder.
    person: Vec<Col>,
    auction: Vec<Col>,
    bid: Vec<Col>,
}

enum Col {
    Int(Int64Builder),
    Str(StringBuilder),
    Time(TimestampMillisecondBuilder),
}

impl Col {
    fn for_field(name: &str) -> Col {
        match name {
            "id" | "initialbid" | "reserve" | "seller" | "category" | "auction" | "bidder"
            | "price" => Col::Int(Int64Builder::new()),
            "datetime" | "expires" => Col::Time(TimestampMillisecondBuilder::new()),
            _ => Col::Str(StringBuilder::new()),
        }
    }

    fn null(&mut self) {
        match self {
            Col::Int(b) => b.append_null(),
            Col::Str(b) => b.append_null(),
            Col::Time(b) => b.append_null(),
        }
    }

    fn int(&mut self, v: i64) {
        match self {
            Col::Int(b) => b.append_value(v),
            Col::Time(b) => b.append_value(v),
            Col::Str(b) => b.append_value(v.to_string()),
        }
    }

    fn str(&mut self, v: &str) {
        match self {
            Col::Str(b) => b.append_value(v),
            other => other.null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Int(b) => Arc::new(b.finish()),
            Col::Str(b) => Arc::new(b.finish()),
            Col::Time(b) => Arc::new(b.finish()),
        }
    }
}

impl Builders {
    fn new() -> Self {
        let cols = |names: &[&str]| names.iter().map(|n| Col::for_field(n)).collect();
        Builders {
            event_type: Vec::new(),
            person: cols(PERSON_FIELDS),
            auction: cols(AUCTION_FIELDS),
            bid: cols(BID_FIELDS),
        }
    }

    fn add(&mut self, c: &NexmarkConfig, n: u64) {
        let kind = c.kind(n);
        let ts = c.timestamp(n);
        self.event_type.push(kind);
        let mut rng = EventRng::new(n, 0x006E_6578_6D61_726B);
        let skip = |cols: &mut Vec<Col>| cols.iter_mut().for_each(Col::null);
        match kind {
            0 => {
                skip(&mut self.auction);
                skip(&mut self.bid);
                let id = FIRST_PERSON_ID + c.people_before(n) as i64;
                let name = format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES));
                let email = format!("{}@{}.com", rng.letters(7), rng.letters(5));
                let card = (0..4)
                    .map(|_| format!("{:04}", rng.below(10_000)))
                    .collect::<Vec<_>>()
                    .join(" ");
                let city = rng.pick(CITIES);
                let state = rng.pick(STATES);
                let used = 8 + name.len() + email.len() + card.len() + city.len() + state.len() + 8;
                let extra = rng.extra(used, c.person_size);
                let p = &mut self.person;
                p[0].int(id);
                p[1].str(&name);
                p[2].str(&email);
                p[3].str(&card);
                p[4].str(city);
                p[5].str(state);
                p[6].int(ts);
                p[7].str(&extra);
            }
            1 => {
                skip(&mut self.person);
                skip(&mut self.bid);
                let id = FIRST_AUCTION_ID + c.auctions_before(n) as i64;
                let seller = pick_recent(
                    &mut rng,
                    FIRST_PERSON_ID,
                    c.people_before(n + 1),
                    ACTIVE_PEOPLE,
                    HOT_SELLER_RATIO,
                );
                let category = FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES) as i64;
                let initial = rng.price();
                let reserve = initial + rng.price();
                let horizon = c.auction_horizon_ms();
                let expires = ts + 1 + rng.below(2 * horizon as u64) as i64;
                let item = rng.letters(20);
                let description = rng.letters(100);
                let used = 8 * 6 + item.len() + description.len();
                let extra = rng.extra(used, c.auction_size);
                let a = &mut self.auction;
                a[0].int(id);
                a[1].str(&item);
                a[2].str(&description);
                a[3].int(initial);
                a[4].int(reserve);
                a[5].int(ts);
                a[6].int(expires);
                a[7].int(seller);
                a[8].int(category);
                a[9].str(&extra);
            }
            _ => {
                skip(&mut self.person);
                skip(&mut self.auction);
                let auction = pick_recent(
                    &mut rng,
                    FIRST_AUCTION_ID,
                    c.auctions_before(n + 1),
                    IN_FLIGHT_AUCTIONS,
                    HOT_AUCTION_RATIO,
                );
                let bidder = pick_recent(
                    &mut rng,
                    FIRST_PERSON_ID,
                    c.people_before(n + 1),
                    ACTIVE_PEOPLE,
                    HOT_BIDDER_RATIO,
                );
                let price = rng.price();
                let (channel, url) = if rng.below(10) > 0 {
                    let i = rng.below(CHANNELS.len() as u64) as usize;
                    (
                        CHANNELS[i].to_string(),
                        format!("https://www.nexmark.com/{}/item.htm?query=1", CHANNELS[i]),
                    )
                } else {
                    let channel = rng.below(10_000);
                    (
                        format!("channel-{channel}"),
                        format!(
                            "https://www.nexmark.com/{}/{}/{}/item.htm?query=1&channel_id={channel}",
                            rng.letters(5),
                            rng.letters(5),
                            rng.letters(5)
                        ),
                    )
                };
                let used = 8 * 4 + channel.len() + url.len();
                let extra = rng.extra(used, c.bid_size);
                let b = &mut self.bid;
                b[0].int(auction);
                b[1].int(bidder);
                b[2].int(price);
                b[3].str(&channel);
                b[4].str(&url);
                b[5].int(ts);
                b[6].str(&extra);
            }
        }
    }

    /// The batch in `schema`'s columns (by name; ROW fields by name, cast to their types).
    fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let rows = self.event_type.len();
        let kinds = Int32Array::from(std::mem::take(&mut self.event_type));
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let name = field.name().to_ascii_lowercase();
            let column: ArrayRef = match name.as_str() {
                "event_type" => cast(&kinds, field.data_type())?,
                "person" | "auction" | "bid" => {
                    let (kind, names, cols) = match name.as_str() {
                        "person" => (0, PERSON_FIELDS, &mut self.person),
                        "auction" => (1, AUCTION_FIELDS, &mut self.auction),
                        _ => (2, BID_FIELDS, &mut self.bid),
                    };
                    let DataType::Struct(fields) = field.data_type() else {
                        return Err(Error::internal(format!(
                            "nexmark column `{}` is not a struct",
                            field.name()
                        )));
                    };
                    let valid = NullBuffer::from(
                        kinds
                            .values()
                            .iter()
                            .map(|k| *k == kind)
                            .collect::<Vec<_>>(),
                    );
                    struct_column(fields, names, cols, valid)?
                }
                other => {
                    return Err(Error::internal(format!("nexmark has no column `{other}`")));
                }
            };
            columns.push(column);
        }
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

fn struct_column(
    fields: &Fields,
    names: &[&str],
    cols: &mut [Col],
    valid: NullBuffer,
) -> Result<ArrayRef> {
    let mut children = Vec::with_capacity(fields.len());
    let mut out_fields: Vec<Field> = Vec::with_capacity(fields.len());
    for f in fields {
        let lower = f.name().to_ascii_lowercase();
        let i = names
            .iter()
            .position(|n| *n == lower)
            .ok_or_else(|| Error::internal(format!("nexmark has no field `{}`", f.name())))?;
        let raw = cols[i].finish();
        let typed = if raw.data_type() == f.data_type() {
            raw
        } else {
            cast(&raw, f.data_type())?
        };
        // Children of a NULL row are NULL; a declared NOT NULL field is relaxed here.
        out_fields.push(f.as_ref().clone().with_nullable(true));
        children.push(typed);
    }
    let relaxed = Fields::from(out_fields);
    let array = StructArray::try_new(relaxed, children, Some(valid))?;
    let declared = DataType::Struct(fields.clone());
    Ok(if array.data_type() == &declared {
        Arc::new(array)
    } else {
        // Same layout, the declared nullability.
        let data = array
            .into_data()
            .into_builder()
            .data_type(declared)
            .build()?;
        datafusion::arrow::array::make_array(data)
    })
}

/// Generates events `first..end` as batches of `schema`.
pub(crate) fn generate(
    config: &NexmarkConfig,
    schema: &SchemaRef,
    first: u64,
    end: u64,
) -> Result<RecordBatch> {
    let mut b = Builders::new();
    for n in first..end {
        b.add(config, n);
    }
    b.finish(schema)
}

/// A nexmark table.
#[derive(Debug)]
pub(crate) struct NexmarkTable {
    name: String,
    schema: SchemaRef,
    config: Arc<NexmarkConfig>,
}

impl NexmarkTable {
    pub(crate) fn try_new(name: &str, def: &TableDef, schema: SchemaRef) -> Result<Self> {
        let config = parse(
            &ConnectorOptions::new(Some(name), "nexmark", &def.options),
            def,
        )?;
        Ok(Self {
            name: name.to_string(),
            schema,
            config: Arc::new(config),
        })
    }
}

#[async_trait::async_trait]
impl TableProvider for NexmarkTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => Arc::clone(&self.schema),
        };
        let events = match (self.config.events, limit) {
            (Some(e), Some(l)) => Some(e.min(l as u64)),
            (e, l) => e.or(l.map(|l| l as u64)),
        };
        let bounded = events.is_some();
        let partitions = match events {
            Some(e) => (state.config().target_partitions() as u64)
                .min(MAX_PARTITIONS)
                .clamp(1, e.div_ceil(BATCH_SIZE).max(1)) as usize,
            None => 1,
        };
        let config = Arc::clone(&self.config);
        let out_schema = Arc::clone(&schema);
        let detail = format!(
            "table={}, events={}, rate={}/s, proportions={}:{}:{}",
            self.name,
            events.map_or("unbounded".to_string(), |e| e.to_string()),
            self.config.first_rate,
            self.config.person,
            self.config.auction,
            self.config.bid
        );
        let range = move |partition: usize| match events {
            Some(e) => {
                let p = partitions as u128;
                let i = partition as u128;
                ((e as u128 * i / p) as u64, (e as u128 * (i + 1) / p) as u64)
            }
            None => (0, u64::MAX),
        };
        // Paced partitions interleave blocks of events, so that together they keep the table's
        // rate and each one's event time moves at wall-clock speed; unpaced ones make ranges.
        let interleave = self.config.paced && partitions > 1;
        let block = paced_block(&self.config);
        let open_at: super::stream_exec::OpenPartitionAt =
            Arc::new(move |partition, offset, _ctx| {
                let shard = match events {
                    Some(e) if interleave => {
                        Shard::interleaved(partition as u64, partitions as u64, e, block, offset)
                    }
                    _ => {
                        let (start, end) = range(partition);
                        Shard::contiguous(start.saturating_add(offset).min(end), end)
                    }
                };
                let stream = event_stream(Arc::clone(&config), Arc::clone(&out_schema), shard);
                Ok(Box::pin(RecordBatchStreamAdapter::new(
                    Arc::clone(&out_schema),
                    stream,
                )) as _)
            });
        let seek = Arc::clone(&open_at);
        let open = Arc::new(move |partition: usize, ctx| open_at(partition, 0, ctx));
        Ok(Arc::new(
            StreamExec::new("NexmarkExec", detail, schema, partitions, bounded, open)
                .with_seek(seek),
        ))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        _input: Arc<dyn ExecutionPlan>,
        _insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(Error::invalid(format!(
            "connector 'nexmark' is a source only; cannot write into table `{}`",
            self.name
        ))
        .into())
    }
}

/// The events one partition makes: a contiguous range (`stride` 0), or, when paced and cut
/// into several partitions, blocks of `block` events taken every `stride` blocks, so that every
/// partition covers the whole event time and, paced together, they keep the table's rate.
#[derive(Clone, Copy)]
struct Shard {
    /// The first event to make (after `skip` events of the shard were made before a restore).
    first: u64,
    /// One past the last event of the table (or of the range).
    end: u64,
    block: u64,
    stride: u64,
}

impl Shard {
    /// Partition `partition` of `partitions` over `events` events, `skip` of its events made
    /// already.
    fn interleaved(partition: u64, partitions: u64, events: u64, block: u64, skip: u64) -> Shard {
        let block = block.max(1);
        let first = (partition + skip / block * partitions) * block + skip % block;
        Shard {
            first,
            end: events,
            block,
            stride: partitions * block,
        }
    }

    fn contiguous(start: u64, end: u64) -> Shard {
        Shard {
            first: start,
            end,
            block: u64::MAX,
            stride: 0,
        }
    }

    /// The events `[next, stop)` to make after `next` (at most `max`), and where to go on.
    fn step(&self, next: u64, max: u64) -> Option<(u64, u64, u64)> {
        if next >= self.end {
            return None;
        }
        if self.stride == 0 {
            let stop = self.end.min(next.saturating_add(max));
            return Some((next, stop, stop));
        }
        let block_end = (next / self.block + 1) * self.block;
        let stop = self.end.min(block_end).min(next.saturating_add(max));
        let after = if stop == block_end {
            // The next block of this partition.
            block_end - self.block + self.stride
        } else {
            stop
        };
        Some((next, stop, after))
    }
}

/// The events of `shard` in batches; paced to their rate in wall-clock time when configured
/// (event `n` is due `offset(n) - offset(first)` after the stream starts).
fn event_stream(
    config: Arc<NexmarkConfig>,
    schema: SchemaRef,
    shard: Shard,
) -> impl futures::Stream<Item = DfResult<RecordBatch>> + Send {
    // Paced: small batches (about 100 ms of events) so rows flow steadily.
    let batch = if config.paced {
        paced_block(&config)
    } else {
        BATCH_SIZE
    };
    let started = Instant::now();
    futures::stream::unfold(shard.first, move |next| {
        let config = Arc::clone(&config);
        let schema = Arc::clone(&schema);
        async move {
            let (from, stop, after) = shard.step(next, batch)?;
            if config.paced {
                let due_us = config.offset_us(stop - 1) - config.offset_us(shard.first);
                let due = Duration::from_micros(u64::try_from(due_us).unwrap_or(u64::MAX));
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            let result = generate(&config, &schema, from, stop).map_err(Into::into);
            Some((result, after))
        }
    })
}

/// Events per batch of a paced table: about 100 ms of events.
fn paced_block(config: &NexmarkConfig) -> u64 {
    (config.first_rate.min(config.next_rate) / 10).clamp(1, BATCH_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event a shard makes, in order.
    fn shard_events(shard: Shard) -> Vec<u64> {
        let mut out = Vec::new();
        let mut next = shard.first;
        while let Some((from, stop, after)) = shard.step(next, 7) {
            out.extend(from..stop);
            next = after;
        }
        out
    }

    #[test]
    fn interleaved_shards_cover_every_event_once_and_resume_at_any_row() {
        for (events, partitions, block) in [(1000, 4, 10), (1003, 3, 25), (5, 4, 10)] {
            let mut all = Vec::new();
            for k in 0..partitions {
                let whole = shard_events(Shard::interleaved(k, partitions, events, block, 0));
                for skip in [1, block - 1, block, block + 3, whole.len() as u64] {
                    let rest = shard_events(Shard::interleaved(k, partitions, events, block, skip));
                    assert_eq!(
                        rest,
                        whole[(skip as usize).min(whole.len())..],
                        "{k} {skip}"
                    );
                }
                all.extend(whole);
            }
            all.sort_unstable();
            assert_eq!(all, (0..events).collect::<Vec<_>>());
        }
        assert_eq!(
            shard_events(Shard::contiguous(3, 20)),
            (3..20).collect::<Vec<_>>()
        );
    }
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{Int32Type, Int64Type, Schema, TimeUnit};

    fn schema() -> SchemaRef {
        let s = |n: &str| Field::new(n, DataType::Utf8, true);
        let i = |n: &str| Field::new(n, DataType::Int64, true);
        let t = |n: &str| Field::new(n, DataType::Timestamp(TimeUnit::Millisecond, None), true);
        Arc::new(Schema::new(vec![
            Field::new("event_type", DataType::Int32, true),
            Field::new(
                "person",
                DataType::Struct(Fields::from(vec![
                    i("id"),
                    s("name"),
                    s("emailAddress"),
                    s("creditCard"),
                    s("city"),
                    s("state"),
                    t("dateTime"),
                    s("extra"),
                ])),
                true,
            ),
            Field::new(
                "auction",
                DataType::Struct(Fields::from(vec![
                    i("id"),
                    s("itemName"),
                    s("description"),
                    i("initialBid"),
                    i("reserve"),
                    t("dateTime"),
                    t("expires"),
                    i("seller"),
                    i("category"),
                    s("extra"),
                ])),
                true,
            ),
            Field::new(
                "bid",
                DataType::Struct(Fields::from(vec![
                    i("auction"),
                    i("bidder"),
                    i("price"),
                    s("channel"),
                    s("url"),
                    t("dateTime"),
                    s("extra"),
                ])),
                true,
            ),
        ]))
    }

    #[test]
    fn event_mix_ids_and_times() {
        let c = NexmarkConfig {
            events: Some(500),
            paced: false,
            ..Default::default()
        };
        let batch = generate(&c, &schema(), 0, 500).unwrap();
        let kinds = batch.column(0).as_primitive::<Int32Type>();
        let count = |k: i32| kinds.values().iter().filter(|v| **v == k).count();
        assert_eq!((count(0), count(1), count(2)), (10, 30, 460));
        // Event 0 is the first person, event 1 the first auction, event 4 a bid.
        let person = batch.column(1).as_struct();
        assert!(person.is_valid(0) && !person.is_valid(1));
        let ids = person.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.value(0), FIRST_PERSON_ID);
        assert_eq!(ids.value(50), FIRST_PERSON_ID + 1);
        let auction = batch.column(2).as_struct();
        let auction_ids = auction.column(0).as_primitive::<Int64Type>();
        assert_eq!(auction_ids.value(1), FIRST_AUCTION_ID);
        assert_eq!(auction_ids.value(3), FIRST_AUCTION_ID + 2);
        // 10,000 events/s: 0.1 ms apart, from the base time.
        let bid = batch.column(3).as_struct();
        let times = bid
            .column(5)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
        assert_eq!(times.value(499), BASE_TIME_MS + 49);
        // Bids go to auctions and bidders that exist.
        let auctions: &Int64Array = bid.column(0).as_primitive::<Int64Type>();
        for row in 4..500 {
            if bid.is_valid(row) {
                let a = auctions.value(row);
                assert!(
                    (FIRST_AUCTION_ID..FIRST_AUCTION_ID + 30).contains(&a),
                    "{a}"
                );
            }
        }
    }

    #[test]
    fn deterministic_across_splits() {
        let c = NexmarkConfig {
            paced: false,
            ..Default::default()
        };
        let whole = generate(&c, &schema(), 0, 300).unwrap();
        let a = generate(&c, &schema(), 0, 120).unwrap();
        let b = generate(&c, &schema(), 120, 300).unwrap();
        let joined = datafusion::arrow::compute::concat_batches(&whole.schema(), [&a, &b]).unwrap();
        assert_eq!(whole, joined);
    }

    #[test]
    fn square_rate_alternates() {
        let c = NexmarkConfig {
            first_rate: 1000,
            next_rate: 100,
            period: Duration::from_secs(1),
            ..Default::default()
        };
        assert_eq!(c.offset_us(1000), 1_000_000);
        assert_eq!(c.offset_us(1001), 1_010_000);
        assert_eq!(c.offset_us(1100), 2_000_000);
    }
}
