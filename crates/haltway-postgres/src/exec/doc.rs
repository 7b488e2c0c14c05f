//! A job's document (`jobs.doc`) written and read field by field: the values `serde_json`
//! writes for the job's `Serialize`, but for the fields its row keeps in columns of their own
//! ([`Columns`]: id, tenant, kind, state, due time, lease, worker and priority), and the same
//! job as its `Deserialize` reads from those values and the columns, with a fraction of the
//! instructions.
//!
//! Every write of a job row encodes its document (a new job's `COPY`, a claim, an end), and
//! through `serde_json` that was a fifth of the engine's instructions in the no-op benchmark:
//! each key and value goes through the serializer's escaping and its writer. Here the keys are
//! constants, numbers go through `itoa` (as in `serde_json`), and a string is copied as it is
//! unless it holds a character JSON escapes. Nested values that are rare or hold floats (a
//! cancel, a webhook, progress figures) still go through `serde_json`. The tests check the
//! document's values against `serde_json`'s, for a job with every field set and for random
//! ones.
//!
//! The document is short because every claim and end rewrites it whole, and the database
//! writes and logs the whole row each time: like the job's `Serialize`, the encoder leaves out
//! a field that is `None` or at its default (zero counts, the default cancel mode, no
//! progress, the default priority), and it leaves out the fields in columns, which the row
//! holds anyway. A no-op job's document is 78 bytes queued instead of 413 with every field
//! written.
//!
//! Reading takes the fields in any order and a field left out as its default, and takes the
//! fields in columns from the columns (documents written before held them too; the columns win,
//! but for a worker column left empty on rows written before it was). Any text it is not sure
//! of (white space, a number in another form, a key it does not know, a field twice or a
//! required one missing) goes to `serde_json` whole, with the columns put in, so a document
//! reads as `serde_json` reads it; strings with escapes and the rare nested values are handed
//! to `serde_json` on their own. Debug builds (the tests) read every document both ways and
//! compare.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use haltway_core::{CancelMode, Job, JobId, JobState, OnCancel, Progress, Reason, Timestamp};

/// Appends job `j`'s document to `out`.
///
/// # Errors
/// Only from `serde_json`, for the nested values it writes.
pub(crate) fn encode(j: &Job, out: &mut BytesMut) -> serde_json::Result<()> {
    out.reserve(384 + j.input.len() + j.metadata.as_deref().map_or(0, str::len));
    text(out, b"{\"input\":", &j.input);
    if let Some(g) = &j.group {
        text(out, b",\"group\":", g.as_str());
    }
    if let Some(m) = &j.metadata {
        text(out, b",\"metadata\":", m);
    }
    if let Some(r) = j.reason {
        text(out, b",\"reason\":", r.as_str());
    }
    if let Some(c) = &j.cancel {
        nested(out, b",\"cancel\":", c)?;
    }
    if j.cancel_mode != CancelMode::default() {
        text(out, b",\"cancel_mode\":", j.cancel_mode.as_str());
    }
    if j.on_cancel != OnCancel::default() {
        text(out, b",\"on_cancel\":", j.on_cancel.as_str());
    }
    if let Some(l) = j.limit {
        int(out, b",\"limit\":", l);
    }
    unless_zero(out, b",\"attempt\":", j.attempt);
    unless_zero(out, b",\"failures\":", j.failures);
    int(out, b",\"max_attempts\":", j.max_attempts);
    unless_zero(out, b",\"cycle\":", j.cycle);
    if let Some(t) = j.deadline {
        int(out, b",\"deadline\":", t.0);
    }
    unless_zero(out, b",\"fixed_cost\":", j.fixed_cost);
    unless_zero(out, b",\"usage\":", j.usage);
    unless_zero(out, b",\"charged\":", j.charged);
    if j.progress != Progress::default() {
        progress(out, &j.progress)?;
    }
    if let Some(e) = &j.last_error {
        text(out, b",\"last_error\":", e);
    }
    if let Some(k) = &j.idempotency_key {
        text(out, b",\"idempotency_key\":", k);
    }
    if let Some(d) = j.request_digest {
        int(out, b",\"request_digest\":", d);
    }
    int(out, b",\"created_at\":", j.created_at.0);
    if let Some(t) = j.started_at {
        int(out, b",\"started_at\":", t.0);
    }
    if let Some(t) = j.finished_at {
        int(out, b",\"finished_at\":", t.0);
    }
    int(out, b",\"last_event_id\":", j.last_event_id);
    if let Some(h) = &j.webhook {
        nested(out, b",\"webhook\":", h)?;
    }
    if let Some(t) = &j.trace {
        text(out, b",\"trace\":", t);
    }
    out.put_u8(b'}');
    Ok(())
}

/// Reads a job's document (see the module's comment).
///
/// # Errors
/// `serde_json`'s, for a document that does not decode.
pub(crate) fn decode(text: &str, row: &Columns<'_>) -> serde_json::Result<Job> {
    let Some(job) = Reader::new(text).job(row) else {
        return slow(text, row);
    };
    #[cfg(debug_assertions)]
    {
        let slow = slow(text, row);
        assert!(
            slow.as_ref().is_ok_and(|s| *s == job),
            "a document reads otherwise than serde_json reads it: {text}"
        );
    }
    Ok(job)
}

/// The fields of a job that its row keeps in columns of their own, and that its document
/// leaves out (documents written before kept them too; the columns win).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Columns<'a> {
    pub(crate) id: uuid::Uuid,
    pub(crate) tenant: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) state: i16,
    pub(crate) run_at: i64,
    pub(crate) lease_until: Option<i64>,
    /// `None` also on rows written before the column was (their documents name it).
    pub(crate) worker: Option<&'a str>,
    pub(crate) priority: i16,
}

impl<'a> Columns<'a> {
    /// The columns of `j`'s row, as the store writes them.
    pub(crate) fn of(j: &'a Job) -> Self {
        Columns {
            id: j.id.0,
            tenant: j.tenant.as_str(),
            kind: j.kind.as_str(),
            state: j.state.code(),
            run_at: j.run_at.0,
            lease_until: j.lease_until.map(|t| t.0),
            worker: j.worker.as_deref(),
            priority: i16::from(j.priority),
        }
    }

    fn state(&self) -> Option<JobState> {
        JobState::from_code(i64::from(self.state))
    }

    fn priority(&self) -> Option<u8> {
        u8::try_from(self.priority).ok()
    }
}

/// A document read by `serde_json`, with the row's columns put in.
fn slow(text: &str, row: &Columns<'_>) -> serde_json::Result<Job> {
    use serde::de::Error as _;
    use serde_json::Value;
    let mut doc: serde_json::Map<String, Value> = serde_json::from_str(text)?;
    let state = row
        .state()
        .ok_or_else(|| serde_json::Error::custom(format!("unknown state code {}", row.state)))?;
    let priority = row.priority().ok_or_else(|| {
        serde_json::Error::custom(format!("priority {} out of range", row.priority))
    })?;
    doc.insert("id".into(), Value::from(row.id.to_string()));
    doc.insert("tenant".into(), Value::from(row.tenant));
    doc.insert("kind".into(), Value::from(row.kind));
    doc.insert("state".into(), Value::from(state.as_str()));
    doc.insert("run_at".into(), Value::from(row.run_at));
    doc.insert("priority".into(), Value::from(priority));
    match row.lease_until {
        Some(t) => doc.insert("lease_until".into(), Value::from(t)),
        None => doc.remove("lease_until"),
    };
    if let Some(w) = row.worker {
        doc.insert("worker".into(), Value::from(w));
    }
    serde_json::from_value(Value::Object(doc))
}

/// The fields of a document as read so far: `None` until seen; an optional field seen as
/// `null` is `Some(None)`. Those the row keeps in columns, which documents written before
/// held too, are read over and only noted as seen (the columns win).
#[derive(Default)]
struct Fields<'a> {
    id: Option<()>,
    tenant: Option<()>,
    kind: Option<()>,
    group: Option<Option<Cow<'a, str>>>,
    input: Option<Cow<'a, str>>,
    metadata: Option<Option<Cow<'a, str>>>,
    state: Option<()>,
    reason: Option<Option<Reason>>,
    cancel: Option<Option<Arc<haltway_core::CancelInfo>>>,
    cancel_mode: Option<CancelMode>,
    on_cancel: Option<OnCancel>,
    limit: Option<Option<u64>>,
    attempt: Option<u32>,
    failures: Option<u32>,
    max_attempts: Option<u32>,
    cycle: Option<u32>,
    run_at: Option<()>,
    deadline: Option<Option<i64>>,
    lease_until: Option<()>,
    worker: Option<Option<Cow<'a, str>>>,
    fixed_cost: Option<u64>,
    usage: Option<u64>,
    charged: Option<u64>,
    progress: Option<Progress>,
    last_error: Option<Option<Cow<'a, str>>>,
    idempotency_key: Option<Option<Cow<'a, str>>>,
    request_digest: Option<Option<u64>>,
    created_at: Option<i64>,
    started_at: Option<Option<i64>>,
    finished_at: Option<Option<i64>>,
    last_event_id: Option<u64>,
    webhook: Option<Option<Arc<haltway_core::Hook>>>,
    priority: Option<()>,
    trace: Option<Option<Cow<'a, str>>>,
}

/// Fills `slot` once; a field seen twice is left to `serde_json`.
fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

/// A cursor over a document's text. Every method answers `None` for text it does not take.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader { text, at: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.at += 1)
    }

    fn null(&mut self) -> bool {
        let hit = self.text.as_bytes()[self.at..].starts_with(b"null");
        if hit {
            self.at += 4;
        }
        hit
    }

    /// A value or `null`.
    fn maybe<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null() {
            return Some(None);
        }
        read(self).map(Some)
    }

    /// A key and its colon; a key with an escape is left to `serde_json`.
    fn key(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let len = self.text.as_bytes()[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\')?;
        self.at = start + len;
        self.eat(b'"')?;
        self.eat(b':')?;
        Some(&self.text[start..start + len])
    }

    /// A string: borrowed when it has no escape, else decoded by `serde_json`.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let bytes = self.text.as_bytes();
        let start = self.at;
        loop {
            match *bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(Cow::Borrowed(&self.text[start..self.at - 1]));
                }
                b'\\' => break,
                // A control character must be escaped: `serde_json` refuses the text.
                c if c < 0x20 => return None,
                _ => self.at += 1,
            }
        }
        loop {
            match *bytes.get(self.at)? {
                b'\\' => self.at += 2,
                b'"' => break,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        serde_json::from_str(&self.text[start - 1..self.at])
            .ok()
            .map(Cow::Owned)
    }

    /// An unsigned integer in plain digits (no leading zero, fraction or exponent).
    fn uint(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(d) = bytes.get(self.at).filter(|b| b.is_ascii_digit()) {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        let leading_zero = digits > 1 && bytes[start] == b'0';
        let more = matches!(self.peek(), Some(b'.' | b'e' | b'E'));
        (digits > 0 && !leading_zero && !more).then_some(n)
    }

    fn int(&mut self) -> Option<i64> {
        if self.eat(b'-').is_some() {
            return i64::try_from(-i128::from(self.uint()?)).ok();
        }
        i64::try_from(self.uint()?).ok()
    }

    fn small<T: TryFrom<u64>>(&mut self) -> Option<T> {
        T::try_from(self.uint()?).ok()
    }

    /// The text of the value here (an object, array, string, number or literal), skipped.
    fn raw(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let (mut depth, mut in_string) = (0usize, false);
        loop {
            let c = *bytes.get(self.at)?;
            self.at += 1;
            match c {
                b'\\' if in_string => self.at += 1,
                b'"' => in_string = !in_string,
                _ if in_string => {}
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.checked_sub(1)?,
                _ => {}
            }
            let next = bytes.get(self.at).copied();
            if depth == 0 && !in_string && matches!(next, Some(b',' | b'}' | b']') | None) {
                return Some(&self.text[start..self.at]);
            }
        }
    }

    /// A value `serde_json` reads from its own text.
    fn nested<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        serde_json::from_str(self.raw()?).ok()
    }

    fn name<T>(&mut self, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
        parse(&self.string()?)
    }

    /// The next key's place in `table`, trying the keys from `from` on first: a document
    /// `encode` wrote has its keys in the table's order, so each is found at the first or
    /// after a few absent ones, without scanning for the key's end.
    fn field_key<T>(&mut self, table: &[(&str, Field<'a, T>)], from: usize) -> Option<usize> {
        let rest = self.text.as_bytes().get(self.at + 1..)?;
        if self.peek()? == b'"' {
            for (i, (key, _)) in table.iter().enumerate().skip(from) {
                let n = key.len();
                if rest.starts_with(key.as_bytes()) && rest.get(n..n + 2) == Some(b"\":") {
                    self.at += n + 3;
                    return Some(i);
                }
            }
        }
        let key = self.key()?;
        table.iter().position(|(k, _)| *k == key)
    }

    /// `{` key: value, … `}`, each value read into `into` by its key's entry in `table`. An
    /// empty object, a key not in the table or one seen twice is left to `serde_json`.
    fn fields<T>(&mut self, table: &[(&str, Field<'a, T>)], into: &mut T) -> Option<()> {
        self.eat(b'{')?;
        let mut next = 0;
        loop {
            let i = self.field_key(table, next)?;
            (table[i].1)(self, into)?;
            next = i + 1;
            if self.eat(b',').is_none() {
                return self.eat(b'}');
            }
        }
    }

    fn progress(&mut self) -> Option<Progress> {
        let mut p = ProgressFields::default();
        self.fields(&progress_fields(), &mut p)?;
        Some(Progress {
            found: p.found?,
            analyzed: p.analyzed?,
            completion: p.completion.flatten(),
            time_left_ms: p.time_left_ms.flatten(),
            stage: p.stage.flatten(),
            recall: p.recall.flatten(),
        })
    }

    fn job(mut self, row: &Columns<'_>) -> Option<Job> {
        let mut f = Fields::default();
        self.fields(&job_fields(), &mut f)?;
        if self.at != self.text.len() {
            return None;
        }
        let owned = |s: Option<Option<Cow<'_, str>>>| s.flatten().map(Cow::into_owned);
        let shared = |s: Cow<'_, str>| -> Arc<str> { Arc::from(&*s) };
        Some(Job {
            id: JobId(row.id),
            tenant: row.tenant.into(),
            kind: row.kind.into(),
            group: f.group.flatten().map(|g| haltway_core::GroupId::from(&*g)),
            input: shared(f.input?),
            metadata: f.metadata.flatten().map(shared),
            state: row.state()?,
            reason: f.reason.flatten(),
            cancel: f.cancel.flatten(),
            cancel_mode: f.cancel_mode.unwrap_or_default(),
            on_cancel: f.on_cancel.unwrap_or_default(),
            limit: f.limit.flatten(),
            attempt: f.attempt.unwrap_or_default(),
            failures: f.failures.unwrap_or_default(),
            max_attempts: f.max_attempts?,
            cycle: f.cycle.unwrap_or_default(),
            run_at: Timestamp(row.run_at),
            deadline: f.deadline.flatten().map(Timestamp),
            lease_until: row.lease_until.map(Timestamp),
            worker: row.worker.map(haltway_core::WorkerId::from).or_else(|| {
                f.worker
                    .flatten()
                    .map(|w| haltway_core::WorkerId::from(&*w))
            }),
            fixed_cost: f.fixed_cost.unwrap_or_default(),
            usage: f.usage.unwrap_or_default(),
            charged: f.charged.unwrap_or_default(),
            progress: f.progress.unwrap_or_default(),
            last_error: owned(f.last_error),
            idempotency_key: owned(f.idempotency_key),
            request_digest: f.request_digest.flatten(),
            created_at: Timestamp(f.created_at?),
            started_at: f.started_at.flatten().map(Timestamp),
            finished_at: f.finished_at.flatten().map(Timestamp),
            last_event_id: f.last_event_id?,
            webhook: f.webhook.flatten(),
            priority: row.priority()?,
            trace: owned(f.trace),
        })
    }
}

/// Reads one field's value into the fields read so far.
type Field<'a, T> = fn(&mut Reader<'a>, &mut T) -> Option<()>;

/// The progress object's fields, as [`Fields`].
#[derive(Default)]
struct ProgressFields {
    found: Option<u64>,
    analyzed: Option<u64>,
    completion: Option<Option<f64>>,
    time_left_ms: Option<Option<u64>>,
    stage: Option<Option<String>>,
    recall: Option<Option<f64>>,
}

/// The progress object's keys in the order `encode` writes them, each with its reader.
fn progress_fields<'a>() -> [(&'static str, Field<'a, ProgressFields>); 6] {
    [
        ("found", |r, p| once(&mut p.found, r.uint()?)),
        ("analyzed", |r, p| once(&mut p.analyzed, r.uint()?)),
        ("completion", |r, p| {
            once(&mut p.completion, r.maybe(Reader::nested)?)
        }),
        ("time_left_ms", |r, p| {
            once(&mut p.time_left_ms, r.maybe(Reader::uint)?)
        }),
        ("stage", |r, p| {
            once(&mut p.stage, r.maybe(|r| r.string().map(Cow::into_owned))?)
        }),
        ("recall", |r, p| {
            once(&mut p.recall, r.maybe(Reader::nested)?)
        }),
    ]
}

/// A job's keys in the order `encode` writes them (with those that documents written before
/// held where they held them), each with its reader.
fn job_fields<'a>() -> [(&'static str, Field<'a, Fields<'a>>); 34] {
    [
        ("id", |r, f| {
            uuid::Uuid::parse_str(&r.string()?).ok()?;
            once(&mut f.id, ())
        }),
        ("tenant", |r, f| once(&mut f.tenant, r.string().map(drop)?)),
        ("kind", |r, f| once(&mut f.kind, r.string().map(drop)?)),
        ("input", |r, f| once(&mut f.input, r.string()?)),
        ("group", |r, f| once(&mut f.group, r.maybe(Reader::string)?)),
        ("metadata", |r, f| {
            once(&mut f.metadata, r.maybe(Reader::string)?)
        }),
        ("state", |r, f| {
            once(&mut f.state, r.name(JobState::parse).map(drop)?)
        }),
        ("reason", |r, f| {
            once(&mut f.reason, r.maybe(|r| r.name(Reason::parse))?)
        }),
        ("cancel", |r, f| {
            once(&mut f.cancel, r.maybe(Reader::nested)?)
        }),
        ("cancel_mode", |r, f| {
            once(&mut f.cancel_mode, r.name(CancelMode::parse)?)
        }),
        ("on_cancel", |r, f| {
            once(&mut f.on_cancel, r.name(OnCancel::parse)?)
        }),
        ("limit", |r, f| once(&mut f.limit, r.maybe(Reader::uint)?)),
        ("attempt", |r, f| once(&mut f.attempt, r.small()?)),
        ("failures", |r, f| once(&mut f.failures, r.small()?)),
        ("max_attempts", |r, f| once(&mut f.max_attempts, r.small()?)),
        ("cycle", |r, f| once(&mut f.cycle, r.small()?)),
        ("run_at", |r, f| once(&mut f.run_at, r.int().map(drop)?)),
        ("deadline", |r, f| {
            once(&mut f.deadline, r.maybe(Reader::int)?)
        }),
        ("lease_until", |r, f| {
            once(&mut f.lease_until, r.maybe(Reader::int).map(drop)?)
        }),
        ("worker", |r, f| {
            once(&mut f.worker, r.maybe(Reader::string)?)
        }),
        ("fixed_cost", |r, f| once(&mut f.fixed_cost, r.uint()?)),
        ("usage", |r, f| once(&mut f.usage, r.uint()?)),
        ("charged", |r, f| once(&mut f.charged, r.uint()?)),
        ("progress", |r, f| once(&mut f.progress, r.progress()?)),
        ("last_error", |r, f| {
            once(&mut f.last_error, r.maybe(Reader::string)?)
        }),
        ("idempotency_key", |r, f| {
            once(&mut f.idempotency_key, r.maybe(Reader::string)?)
        }),
        ("request_digest", |r, f| {
            once(&mut f.request_digest, r.maybe(Reader::uint)?)
        }),
        ("created_at", |r, f| once(&mut f.created_at, r.int()?)),
        ("started_at", |r, f| {
            once(&mut f.started_at, r.maybe(Reader::int)?)
        }),
        ("finished_at", |r, f| {
            once(&mut f.finished_at, r.maybe(Reader::int)?)
        }),
        ("last_event_id", |r, f| {
            once(&mut f.last_event_id, r.uint()?)
        }),
        ("webhook", |r, f| {
            once(&mut f.webhook, r.maybe(Reader::nested)?)
        }),
        ("priority", |r, f| {
            once(&mut f.priority, r.small::<u8>().map(drop)?)
        }),
        ("trace", |r, f| once(&mut f.trace, r.maybe(Reader::string)?)),
    ]
}

/// The progress object; its floats go through `serde_json` (its float format), the rest here.
fn progress(out: &mut BytesMut, p: &haltway_core::Progress) -> serde_json::Result<()> {
    int(out, b",\"progress\":{\"found\":", p.found);
    int(out, b",\"analyzed\":", p.analyzed);
    out.put_slice(b",\"completion\":");
    match p.completion {
        Some(c) => serde_json::to_writer(BufMut::writer(&mut *out), &c)?,
        None => out.put_slice(b"null"),
    }
    out.put_slice(b",\"time_left_ms\":");
    match p.time_left_ms {
        Some(t) => out.put_slice(itoa::Buffer::new().format(t).as_bytes()),
        None => out.put_slice(b"null"),
    }
    out.put_slice(b",\"stage\":");
    match &p.stage {
        Some(s) => string(out, s),
        None => out.put_slice(b"null"),
    }
    out.put_slice(b",\"recall\":");
    match p.recall {
        Some(r) => serde_json::to_writer(BufMut::writer(&mut *out), &r)?,
        None => out.put_slice(b"null"),
    }
    out.put_u8(b'}');
    Ok(())
}

/// `key` (with its comma, quotes and colon) and an integer.
fn int(out: &mut BytesMut, key: &[u8], n: impl itoa::Integer) {
    out.put_slice(key);
    out.put_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `key` and `n`, unless `n` is zero (a field whose default is zero, read back as that).
fn unless_zero<N: itoa::Integer + Default + PartialEq>(out: &mut BytesMut, key: &[u8], n: N) {
    if n != N::default() {
        int(out, key, n);
    }
}

/// `key` and a JSON string.
fn text(out: &mut BytesMut, key: &[u8], s: &str) {
    out.put_slice(key);
    string(out, s);
}

/// `key` and a value `serde_json` writes.
fn nested<T: serde::Serialize>(out: &mut BytesMut, key: &[u8], v: &T) -> serde_json::Result<()> {
    out.put_slice(key);
    serde_json::to_writer(BufMut::writer(&mut *out), v)
}

/// A JSON string: copied between quotes when nothing in it needs escaping (`serde_json`
/// escapes quotes, backslashes and control characters, nothing else), else `serde_json`'s.
fn string(out: &mut BytesMut, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.put_u8(b'"');
        out.put_slice(s.as_bytes());
        out.put_u8(b'"');
    } else {
        // Writing a `str` into memory cannot fail.
        let _ = serde_json::to_writer(BufMut::writer(&mut *out), s);
    }
}

#[cfg(test)]
#[path = "doc_tests.rs"]
mod tests;
