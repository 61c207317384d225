//! Connection limits of the HTTP endpoint: how many connections, for how long, and
//! which one goes when a new one needs its place.
//!
//! In: accepted sockets and what hyper reads, writes and answers on them. Out: a
//! [`Table`] of open connections, a watchdog per connection that says when it has to
//! close ([`Close`]), the victim to close when the table is full, and counts of all
//! of it for `/metrics` ([`Collector`]).
//!
//! Promises:
//! * connections never hold more than `min(--web.max-connections, RLIMIT_NOFILE −
//!   reserve)` descriptors ([`budget`]), so the tailer, the checkpoint and a new
//!   scrape always find one;
//! * at the cap a new connection is admitted by closing the connection that has had
//!   no request in progress for longest; when every connection is busy, the oldest
//!   `/api/events` stream goes (its client resumes with `Last-Event-ID` and misses
//!   nothing); only when all are answering other requests is the new one closed;
//! * a connection must send its request head within the header timeout, counted from
//!   accept or from the first byte of a later request, whether it sends nothing or
//!   trickles (the TLS handshake counts as part of the head);
//! * between requests a connection may stay idle for the idle timeout;
//! * a response that moves no byte for the idle timeout (at least [`MIN_STALL`]) is
//!   cut: a client that stops reading cannot hold its place for ever.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

mod metrics;

pub use metrics::{Collector, Stats};

/// Descriptors connections may never use: for the tailer's open transcripts, inotify,
/// the checkpoint's temporary file, OTLP and webhook sockets, and the one `accept`
/// needs before a victim is closed. At most half of the limit.
pub const FD_RESERVE: u64 = 128;

/// A response may be silent this long at least before it counts as stalled: twice
/// the interval of the `/api/events` keep-alive comment, so a quiet event stream is
/// never taken for a stuck one whatever `--web.idle-timeout` says.
pub const MIN_STALL: Duration = Duration::from_secs(2 * crate::server::api::KEEP_ALIVE.as_secs());

/// The endpoint's limits, validated.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Effective cap (already lowered to fit the descriptor limit).
    pub max_connections: usize,
    /// Time a connection has to send a request head (and finish the TLS handshake),
    /// from accept or from the first byte of a later request.
    pub header_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request; also how long a
    /// response may move no byte (at least [`MIN_STALL`]).
    pub idle_timeout: Duration,
}

/// How many connections fit under the descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The soft `RLIMIT_NOFILE` after raising it to the hard limit.
    pub fd_limit: u64,
    /// Descriptors kept for the rest of the daemon ([`FD_RESERVE`], at most half the limit).
    pub reserve: u64,
    /// The requested cap, lowered to `fd_limit - reserve` (at least 1).
    pub max_connections: usize,
}

/// Raise the soft descriptor limit to the hard one, then fit `requested` connections
/// under it with [`FD_RESERVE`] to spare.
pub fn budget(requested: usize) -> Budget {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(1024);
    budget_for(limit, requested)
}

fn budget_for(fd_limit: u64, requested: usize) -> Budget {
    let reserve = FD_RESERVE.min(fd_limit / 2);
    let room = usize::try_from(fd_limit.saturating_sub(reserve)).unwrap_or(usize::MAX);
    Budget { fd_limit, reserve, max_connections: requested.min(room).max(1) }
}

/// Why the server closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The request head (or TLS handshake) did not arrive within the header timeout.
    HeaderTimeout,
    /// No request for the idle timeout.
    IdleTimeout,
    /// A response moved no byte for the idle timeout (at least [`MIN_STALL`]).
    Stalled,
    /// Closed at the cap to admit a new connection: it had no request in progress.
    Evicted,
    /// Closed at the cap to admit a new connection: the oldest `/api/events` stream.
    EvictedStream,
    /// A new connection closed at once: at the cap, and every connection was busy.
    Rejected,
    /// The TLS handshake failed (plain HTTP to the TLS port, an unknown CA, a refused version).
    TlsHandshake,
}

impl Close {
    const ALL: [Close; 7] = [
        Close::HeaderTimeout,
        Close::IdleTimeout,
        Close::Stalled,
        Close::Evicted,
        Close::EvictedStream,
        Close::Rejected,
        Close::TlsHandshake,
    ];

    /// The `reason` label value of `claude_sessions_exporter_http_connections_closed_total`.
    pub fn label(self) -> &'static str {
        match self {
            Close::HeaderTimeout => "header_timeout",
            Close::IdleTimeout => "idle_timeout",
            Close::Stalled => "stalled",
            Close::Evicted => "evicted",
            Close::EvictedStream => "evicted_stream",
            Close::Rejected => "rejected",
            Close::TlsHandshake => "tls_handshake",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head: from accept, or from the first byte
    /// of the next request on a kept-alive connection.
    Head,
    /// Kept alive between requests, nothing received yet.
    Idle,
    /// A request is being answered (until its response body is done or dropped).
    Busy,
}

#[derive(Debug)]
struct SlotState {
    phase: Phase,
    /// When the current phase began.
    since: Instant,
    /// Bytes arrived while busy: a pipelined next request (or a request body; then a
    /// kept-alive client is held to the header timeout, not the idle one): next phase Head.
    pending: bool,
    /// The response in progress is an `/api/events` stream, or the connection is an `/api/ws` WebSocket.
    stream: bool,
    /// Chosen as a victim; not to be chosen twice.
    evicting: bool,
}

/// One open connection, shared between its task, its IO wrapper and the table.
#[derive(Debug)]
pub struct Slot {
    opened: Instant,
    epoch: Instant,
    state: Mutex<SlotState>,
    /// Milliseconds from `epoch` to the last byte read or written.
    last_io: AtomicU64,
    /// The phase changed (the watchdog's deadline may have moved closer).
    changed: Notify,
    /// Close now (eviction).
    kill: Notify,
}

impl Slot {
    fn new(epoch: Instant) -> Slot {
        let now = Instant::now();
        Slot {
            opened: now,
            epoch,
            state: Mutex::new(SlotState {
                phase: Phase::Head,
                since: now,
                pending: false,
                stream: false,
                evicting: false,
            }),
            last_io: AtomicU64::new(ms_since(epoch, now)),
            changed: Notify::new(),
            kill: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn touch(&self) {
        self.last_io.store(ms_since(self.epoch, Instant::now()), Ordering::Relaxed);
    }

    fn on_read(&self) {
        self.touch();
        let mut s = self.lock();
        match s.phase {
            Phase::Idle => {
                s.phase = Phase::Head;
                s.since = Instant::now();
                drop(s);
                self.changed.notify_one();
            }
            Phase::Busy => s.pending = true,
            Phase::Head => {}
        }
    }

    /// A request head was parsed: the connection is busy until the returned guard drops
    /// (with the response body).
    pub fn begin(self: &Arc<Self>) -> Busy {
        {
            let mut s = self.lock();
            s.phase = Phase::Busy;
            s.since = Instant::now();
            s.pending = false;
        }
        self.touch();
        self.changed.notify_one();
        Busy(Arc::clone(self))
    }

    fn end(&self) {
        {
            let mut s = self.lock();
            s.phase = if s.pending { Phase::Head } else { Phase::Idle };
            s.since = Instant::now();
            s.pending = false;
            s.stream = false;
        }
        self.changed.notify_one();
    }

    /// When this connection has to close, and why, as things stand.
    fn deadline(&self, limits: &Limits) -> (Instant, Close) {
        let s = self.lock();
        match s.phase {
            Phase::Head => (s.since + limits.header_timeout, Close::HeaderTimeout),
            Phase::Idle => (s.since + limits.idle_timeout, Close::IdleTimeout),
            Phase::Busy => {
                let last = self.epoch + Duration::from_millis(self.last_io.load(Ordering::Relaxed));
                (last.max(s.since) + limits.idle_timeout.max(MIN_STALL), Close::Stalled)
            }
        }
    }

    /// Resolves when the table chose this connection as a victim.
    pub async fn killed(&self) {
        self.kill.notified().await;
    }
}

fn ms_since(epoch: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

/// A request in progress; dropping it (with the response body) ends it.
#[derive(Debug)]
pub struct Busy(Arc<Slot>);

impl Busy {
    /// The response is an `/api/events` stream or the connection an `/api/ws` WebSocket:
    /// long-lived, evicted only after every idle connection.
    pub fn mark_stream(&self) {
        self.0.lock().stream = true;
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Resolves with the reason once the connection outlived its phase's deadline.
pub async fn watchdog(slot: &Slot, limits: &Limits) -> Close {
    loop {
        let (at, why) = slot.deadline(limits);
        if Instant::now() >= at {
            return why;
        }
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            () = slot.changed.notified() => {}
        }
    }
}

/// The open connections.
#[derive(Debug)]
pub struct Table {
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
    /// A connection was removed.
    released: Notify,
    epoch: Instant,
    /// The limits every connection of this table is held to.
    pub limits: Limits,
    /// Counts for `/metrics` (closes by reason, failed accepts, refused logins).
    pub stats: Stats,
}

impl Table {
    /// An empty table for connections held to `limits`.
    pub fn new(limits: Limits) -> Table {
        Table {
            slots: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            released: Notify::new(),
            epoch: Instant::now(),
            limits,
            stats: Stats::default(),
        }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections open now (registered and not yet dropped).
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    /// No connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// At the cap: a new connection needs a victim ([`Table::evict_one`]).
    pub fn is_full(&self) -> bool {
        self.len() >= self.limits.max_connections
    }

    /// Add a connection; it leaves the table when the registration drops.
    pub fn register(self: &Arc<Self>) -> (Arc<Slot>, Registration) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::new(self.epoch));
        self.slots().insert(id, Arc::clone(&slot));
        (slot, Registration { table: Arc::clone(self), id })
    }

    /// Choose a connection to close for a new one and tell it to close: the one with
    /// no request in progress for longest, else the oldest event stream. `None`: every
    /// connection is answering a request.
    pub fn evict_one(&self) -> Option<Close> {
        let slots = self.slots();
        let mut best: Option<(u8, Instant, &Arc<Slot>)> = None;
        for slot in slots.values() {
            let s = slot.lock();
            if s.evicting {
                continue;
            }
            let rank = match s.phase {
                Phase::Head | Phase::Idle => (0, s.since),
                Phase::Busy if s.stream => (1, slot.opened),
                Phase::Busy => continue,
            };
            if best.as_ref().is_none_or(|(c, t, _)| rank < (*c, *t)) {
                best = Some((rank.0, rank.1, slot));
            }
        }
        let (class, _, victim) = best?;
        victim.lock().evicting = true;
        victim.kill.notify_one();
        Some(if class == 0 { Close::Evicted } else { Close::EvictedStream })
    }

    /// Wait (at most `timeout`) until the table is below the cap again: victims close
    /// on their own task, and the descriptor they free is the one the next accept needs.
    pub async fn wait_room(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if !self.is_full() {
                return;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return;
            }
        }
    }
}

/// A connection's place in the [`Table`].
#[derive(Debug)]
pub struct Registration {
    table: Arc<Table>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.table.slots().remove(&self.id);
        self.table.released.notify_waiters();
    }
}

/// A socket (or any IO) that tells its [`Slot`] when bytes move.
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    slot: Arc<Slot>,
}

impl<T> Tracked<T> {
    /// Wrap `inner`; reads and writes on it are reported to `slot`.
    pub fn new(inner: T, slot: Arc<Slot>) -> Tracked<T> {
        Tracked { inner, slot }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.slot.on_read();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.slot.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.slot.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether an `accept` error means the process or system ran out of descriptors
/// (or kernel memory): retrying at once fails again, so the accept loop backs off.
pub fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// A run of the same trouble, logged when it starts and when it ends, not at each occurrence.
#[derive(Debug, Default)]
pub struct Episode {
    since: Option<Instant>,
    last: Option<Instant>,
    count: u64,
}

impl Episode {
    /// Count one occurrence; true if it starts a new episode (log it).
    pub fn hit(&mut self) -> bool {
        let now = Instant::now();
        self.count += 1;
        self.last = Some(now);
        let starts = self.since.is_none();
        if starts {
            self.since = Some(now);
        }
        starts
    }

    /// End the episode; its occurrences if there was one.
    pub fn end(&mut self) -> Option<u64> {
        self.since.take().map(|_| std::mem::take(&mut self.count))
    }

    /// End the episode if nothing happened for `quiet`.
    pub fn end_if_quiet(&mut self, quiet: Duration) -> Option<u64> {
        if self.since.is_some() && self.last.is_some_and(|t| t.elapsed() >= quiet) { self.end() } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_keeps_a_reserve_below_the_descriptor_limit() {
        assert_eq!(budget_for(1024, 512), Budget { fd_limit: 1024, reserve: 128, max_connections: 512 });
        assert_eq!(budget_for(1024, 5000).max_connections, 1024 - 128);
        // A tiny limit keeps half for the rest of the daemon.
        assert_eq!(budget_for(100, 512), Budget { fd_limit: 100, reserve: 50, max_connections: 50 });
        assert_eq!(budget_for(1, 512).max_connections, 1);
        assert_eq!(budget_for(u64::MAX, 512).max_connections, 512);
    }

    #[test]
    fn out_of_descriptors_is_told_from_other_accept_errors() {
        assert!(out_of_descriptors(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(out_of_descriptors(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!out_of_descriptors(&io::Error::from_raw_os_error(libc::ECONNABORTED)));
        assert!(!out_of_descriptors(&io::Error::other("x")));
    }

    fn limits() -> Limits {
        Limits { max_connections: 3, header_timeout: Duration::from_secs(1), idle_timeout: Duration::from_secs(5) }
    }

    #[tokio::test(start_paused = true)]
    async fn victims_are_idle_first_then_the_oldest_stream_never_a_busy_request() {
        let table = Arc::new(Table::new(limits()));
        let (stream, _r1) = table.register();
        let busy_stream = stream.begin();
        busy_stream.mark_stream();
        tokio::time::advance(Duration::from_millis(10)).await;
        let (request, _r2) = table.register();
        let _busy = request.begin();
        tokio::time::advance(Duration::from_millis(10)).await;
        let (idle, _r3) = table.register();
        assert!(table.is_full());
        assert_eq!(table.evict_one(), Some(Close::Evicted));
        assert!(idle.lock().evicting);
        // Chosen once only: the next victim is the stream, and then nobody.
        assert_eq!(table.evict_one(), Some(Close::EvictedStream));
        assert!(stream.lock().evicting);
        assert_eq!(table.evict_one(), None);
        assert!(!request.lock().evicting);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_phase() {
        let table = Arc::new(Table::new(limits()));
        let (slot, _r) = table.register();
        let l = table.limits;
        // A new connection has the header timeout, whether it sends nothing or not.
        let t0 = Instant::now();
        assert_eq!(watchdog(&slot, &l).await, Close::HeaderTimeout);
        assert_eq!(t0.elapsed(), l.header_timeout);
        // Answered: kept alive for the idle timeout.
        drop(slot.begin());
        let t1 = Instant::now();
        assert_eq!(watchdog(&slot, &l).await, Close::IdleTimeout);
        assert_eq!(t1.elapsed(), l.idle_timeout);
        // The first byte of a next request starts the header timeout again.
        drop(slot.begin());
        tokio::time::advance(Duration::from_secs(2)).await;
        slot.on_read();
        let t2 = Instant::now();
        assert_eq!(watchdog(&slot, &l).await, Close::HeaderTimeout);
        assert_eq!(t2.elapsed(), l.header_timeout);
        // A busy connection is cut only when nothing moved for at least MIN_STALL.
        let _busy = slot.begin();
        let t3 = Instant::now();
        assert_eq!(watchdog(&slot, &l).await, Close::Stalled);
        assert_eq!(t3.elapsed(), MIN_STALL);
    }

    #[test]
    fn episodes_are_logged_once() {
        let mut e = Episode::default();
        assert!(e.hit());
        assert!(!e.hit());
        assert!(!e.hit());
        assert_eq!(e.end(), Some(3));
        assert_eq!(e.end(), None);
        assert!(e.hit());
    }
}
