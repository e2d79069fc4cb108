//! A send plan: a batch described as plain data (lengths, counts, destination indexes), made
//! before any memory is borrowed.
//!
//! The binding builds a [`SendPlan`] while it reads JavaScript values (phase 1, when user code
//! can run). Only then, with no JavaScript able to run, does it look up each view's current
//! bytes (phase 2) and call [`SendPlan::send`] with them. A view that was detached, transferred
//! or shrunk in between is caught here, by comparing its current length with the planned one:
//! the messages before it are sent, and it fails with [`PlanStop::ViewChanged`].

use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

use crate::addr::SockAddr;
use crate::gso::{self, GsoSupport, MAX_GSO_BYTES, MAX_GSO_SEGMENTS};
use crate::send::{
    Batch, DestinationId, PacketSource, SendScratch, SendStop, MAX_SEGMENTS_PER_MESSAGE,
};

/// Marks a message that goes to the connected peer (no `msg_name`).
pub const CONNECTED_PEER: u32 = u32::MAX;

/// Most messages one plan may hold (the binding refuses more before allocating).
pub const MAX_PLAN_MESSAGES: usize = 1 << 24;

/// Most bytes a message with its own segment size may hold when it makes more than one
/// datagram: one GSO buffer must fit one IPv4 packet before segmentation (65535 − 20 − 8).
pub const MAX_SEGMENTED_BYTES: usize = crate::MAX_UDP_PAYLOAD_V4;

/// A place in a plan: message `message`, of which the first `segment` datagrams have gone out
/// (non-zero only inside a message with its own segment size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanPosition {
    pub message: usize,
    pub segment: usize,
}

/// A message's wish for where it leaves from, before it is checked against its destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceRequest {
    /// The source address (`None`: the routing's choice).
    pub address: Option<IpAddr>,
    /// The interface index (0: the routing's choice).
    pub interface: u32,
}

/// A planned batch. Piece `p` is the `p`-th view; message `m` gathers
/// `pieces_per_message[m]` consecutive pieces (one each when the list is empty).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SendPlan {
    /// The length each piece had when it was validated: exactly this many bytes are sent.
    pub piece_lengths: Vec<u32>,
    /// First piece of each message, and one past the last at the end (`messages + 1` entries);
    /// empty when every message is one piece (message `m` is piece `m`), the common plan,
    /// which then costs no list and no lookups.
    first_piece: Vec<u32>,
    /// Index into `destinations`, or [`CONNECTED_PEER`], per message; empty: all messages to
    /// `destinations[0]` if there is one, else to the connected peer.
    message_destinations: Vec<u32>,
    pub destinations: Vec<SockAddr>,
    /// TOS byte / traffic class per message (0: none), or empty for none at all.
    tos: Vec<u8>,
    /// GSO segment size per message (0: one plain datagram), or empty for none at all. A
    /// message with size `s` leaves as datagrams of `s` bytes (the last may be shorter).
    segment_sizes: Vec<u16>,
    /// Source address / interface per message, or empty for none at all.
    sources: Vec<Option<PacketSource>>,
}

/// Why a plan is malformed (the binding turns these into `RangeError`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The piece counts add up to more or fewer pieces than there are.
    PieceCountMismatch {
        pieces: usize,
        counted: u64,
    },
    /// A message gathers more than IOV_MAX pieces.
    TooManyPieces {
        message: usize,
        pieces: u32,
    },
    /// A destination index points past the destination table.
    BadDestination {
        message: usize,
        index: u32,
    },
    /// The per-message destination list has the wrong length.
    DestinationCountMismatch {
        messages: usize,
        given: usize,
    },
    TooManyMessages(usize),
    /// The per-message TOS list has the wrong length.
    TosCountMismatch {
        messages: usize,
        given: usize,
    },
    /// The per-message segment size list has the wrong length.
    SegmentSizeCountMismatch {
        messages: usize,
        given: usize,
    },
    /// A message with a segment size makes more than UDP_MAX_SEGMENTS datagrams.
    TooManyDatagrams {
        message: usize,
        datagrams: usize,
    },
    /// A message with a segment size is larger than one GSO buffer may be.
    SegmentedTooLong {
        message: usize,
        bytes: usize,
    },
    /// The per-message source list has the wrong length.
    SourceCountMismatch {
        messages: usize,
        given: usize,
    },
    /// A source address of the other family than the message's destination.
    SourceFamily {
        message: usize,
        source: IpAddr,
        destination_is_v6: bool,
    },
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::PieceCountMismatch { pieces, counted } => write!(
                f,
                "the piece counts add up to {counted}, but {pieces} views were given"
            ),
            PlanError::TooManyPieces { message, pieces } => write!(
                f,
                "message {message} gathers {pieces} buffers; at most {MAX_SEGMENTS_PER_MESSAGE} (IOV_MAX) are allowed"
            ),
            PlanError::BadDestination { message, index } => {
                write!(f, "message {message} names destination {index}, which does not exist")
            }
            PlanError::DestinationCountMismatch { messages, given } => write!(
                f,
                "{given} destination indexes were given for {messages} messages"
            ),
            PlanError::TosCountMismatch { messages, given } => write!(
                f,
                "{given} TOS values were given for {messages} messages"
            ),
            PlanError::TooManyMessages(n) => write!(
                f,
                "a batch may hold at most {MAX_PLAN_MESSAGES} messages; got {n}"
            ),
            PlanError::SegmentSizeCountMismatch { messages, given } => write!(
                f,
                "{given} segment sizes were given for {messages} messages"
            ),
            PlanError::TooManyDatagrams { message, datagrams } => write!(
                f,
                "message {message} makes {datagrams} datagrams of its segment size; at most {MAX_GSO_SEGMENTS} (UDP_MAX_SEGMENTS) are allowed"
            ),
            PlanError::SegmentedTooLong { message, bytes } => write!(
                f,
                "message {message} holds {bytes} bytes; a message with a segment size may hold at most {MAX_SEGMENTED_BYTES}"
            ),
            PlanError::SourceCountMismatch { messages, given } => write!(
                f,
                "{given} source entries were given for {messages} messages"
            ),
            PlanError::SourceFamily {
                message,
                source,
                destination_is_v6,
            } => write!(
                f,
                "message {message}: source address {source} is {} but its destination is {}",
                if source.is_ipv4() { "IPv4" } else { "IPv6" },
                if *destination_is_v6 { "IPv6" } else { "IPv4" }
            ),
        }
    }
}

impl std::error::Error for PlanError {}

/// Why [`SendPlan::send`] stopped.
#[derive(Debug)]
pub enum PlanStop {
    Complete,
    /// The send buffer is full: resume from `sent` when the socket is writable.
    WouldBlock,
    /// Message `index` failed (see [`SendStop::Failed`] for how `sent` relates to it, and
    /// for `syscall`).
    Failed {
        index: usize,
        error: io::Error,
        syscall: &'static str,
    },
    /// A view of message `index` no longer holds the bytes that were validated (detached,
    /// transferred or shrunk): nothing of it was sent.
    ViewChanged {
        index: usize,
        piece: usize,
    },
}

/// How far a plan got: messages `0..sent` have gone out, in order.
#[derive(Debug)]
pub struct PlanReport {
    pub sent: usize,
    pub stop: PlanStop,
    /// Datagrams of message `sent` that went out too: non-zero only when a message with its
    /// own segment size, sent as plain datagrams (no GSO), was cut short. Resume from
    /// `PlanPosition { message: sent, segment: segments_sent }`.
    pub segments_sent: usize,
}

impl SendPlan {
    /// Checks and records a plan. `pieces_per_message` empty means one piece per message;
    /// `message_destinations` empty means "all to `destinations[0]`, or the connected peer".
    pub fn new(
        piece_lengths: Vec<u32>,
        pieces_per_message: &[u32],
        message_destinations: Vec<u32>,
        destinations: Vec<SockAddr>,
    ) -> Result<SendPlan, PlanError> {
        let pieces = piece_lengths.len();
        let messages = if pieces_per_message.is_empty() {
            pieces
        } else {
            pieces_per_message.len()
        };
        if messages > MAX_PLAN_MESSAGES || pieces > MAX_PLAN_MESSAGES * 4 {
            return Err(PlanError::TooManyMessages(messages.max(pieces)));
        }
        let mut first_piece = Vec::new();
        if !pieces_per_message.is_empty() {
            first_piece.reserve(messages + 1);
            let mut at: u64 = 0;
            for (message, &count) in pieces_per_message.iter().enumerate() {
                if count as usize > MAX_SEGMENTS_PER_MESSAGE {
                    return Err(PlanError::TooManyPieces {
                        message,
                        pieces: count,
                    });
                }
                first_piece.push(at.min(u64::from(u32::MAX)) as u32);
                at += u64::from(count);
            }
            if at != pieces as u64 {
                return Err(PlanError::PieceCountMismatch {
                    pieces,
                    counted: at,
                });
            }
            first_piece.push(pieces as u32);
        }
        if !message_destinations.is_empty() {
            if message_destinations.len() != messages {
                return Err(PlanError::DestinationCountMismatch {
                    messages,
                    given: message_destinations.len(),
                });
            }
            for (message, &index) in message_destinations.iter().enumerate() {
                if index != CONNECTED_PEER && index as usize >= destinations.len() {
                    return Err(PlanError::BadDestination { message, index });
                }
            }
        }
        Ok(SendPlan {
            piece_lengths,
            first_piece,
            message_destinations,
            destinations,
            tos: Vec::new(),
            segment_sizes: Vec::new(),
            sources: Vec::new(),
        })
    }

    /// Gives each message a TOS byte / traffic class (DSCP << 2 | ECN; 0: the socket's own),
    /// sent as an `IP_TOS` / `IPV6_TCLASS` control message. Empty: none for any message.
    pub fn set_tos(&mut self, tos: Vec<u8>) -> Result<(), PlanError> {
        if !tos.is_empty() && tos.len() != self.len() {
            return Err(PlanError::TosCountMismatch {
                messages: self.len(),
                given: tos.len(),
            });
        }
        self.tos = tos;
        Ok(())
    }

    /// The TOS byte message `m` is sent with (0: none).
    pub fn tos_of(&self, message: usize) -> u8 {
        self.tos.get(message).copied().unwrap_or(0)
    }

    /// Gives messages their own GSO segment size (0: a plain datagram; empty: none has one).
    /// Checked: at most UDP_MAX_SEGMENTS datagrams and [`MAX_SEGMENTED_BYTES`] per message.
    pub fn set_segment_sizes(&mut self, sizes: Vec<u16>) -> Result<(), PlanError> {
        if sizes.is_empty() {
            self.segment_sizes = sizes;
            return Ok(());
        }
        if sizes.len() != self.len() {
            return Err(PlanError::SegmentSizeCountMismatch {
                messages: self.len(),
                given: sizes.len(),
            });
        }
        for (message, &size) in sizes.iter().enumerate() {
            if size == 0 {
                continue;
            }
            let bytes = self.message_len(message);
            let datagrams = bytes.div_ceil(usize::from(size)).max(1);
            if datagrams > MAX_GSO_SEGMENTS {
                return Err(PlanError::TooManyDatagrams { message, datagrams });
            }
            if datagrams > 1 && bytes > MAX_SEGMENTED_BYTES {
                return Err(PlanError::SegmentedTooLong { message, bytes });
            }
        }
        self.segment_sizes = sizes;
        Ok(())
    }

    /// Message `m`'s own segment size (0: none, one plain datagram).
    pub fn segment_size_of(&self, message: usize) -> usize {
        usize::from(self.segment_sizes.get(message).copied().unwrap_or(0))
    }

    /// How many datagrams message `m` makes (1 unless it has a segment size).
    pub fn datagrams_of(&self, message: usize) -> usize {
        match self.segment_size_of(message) {
            0 => 1,
            size => self.message_len(message).div_ceil(size).max(1),
        }
    }

    /// Gives messages a source address and/or interface (`None`: the routing's choice; empty:
    /// none has one), checked against each destination's family: an IPv4 source (or an
    /// IPv4-mapped one) for IPv4 and IPv4-mapped destinations (`IP_PKTINFO`), an IPv6 one for
    /// IPv6 destinations (`IPV6_PKTINFO`). `connected_peer` is where messages without a
    /// destination go.
    pub fn set_sources(
        &mut self,
        requests: Vec<Option<SourceRequest>>,
        connected_peer: Option<SockAddr>,
    ) -> Result<(), PlanError> {
        if requests.is_empty() {
            self.sources = Vec::new();
            return Ok(());
        }
        if requests.len() != self.len() {
            return Err(PlanError::SourceCountMismatch {
                messages: self.len(),
                given: requests.len(),
            });
        }
        let mut sources = Vec::with_capacity(requests.len());
        for (message, request) in requests.into_iter().enumerate() {
            let Some(request) = request else {
                sources.push(None);
                continue;
            };
            let destination = self.destination_of(message).copied().or(connected_peer);
            let destination_is_v4 = match destination {
                Some(SockAddr::V4(_)) => true,
                Some(SockAddr::V6(v6)) => is_v4_mapped(&v6.sin6_addr.s6_addr),
                // No destination at all: the send fails (EDESTADDRREQ); follow the source.
                None => {
                    !matches!(request.address, Some(IpAddr::V6(a)) if a.to_ipv4_mapped().is_none())
                }
            };
            let source = match (request.address, destination_is_v4) {
                (None, true) => PacketSource::V4 {
                    address: std::net::Ipv4Addr::UNSPECIFIED,
                    interface: request.interface,
                },
                (None, false) => PacketSource::V6 {
                    address: std::net::Ipv6Addr::UNSPECIFIED,
                    interface: request.interface,
                },
                (Some(IpAddr::V4(address)), true) => PacketSource::V4 {
                    address,
                    interface: request.interface,
                },
                (Some(IpAddr::V6(v6)), true) if v6.to_ipv4_mapped().is_some() => PacketSource::V4 {
                    address: v6
                        .to_ipv4_mapped()
                        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                    interface: request.interface,
                },
                (Some(IpAddr::V6(address)), false) if address.to_ipv4_mapped().is_none() => {
                    PacketSource::V6 {
                        address,
                        interface: request.interface,
                    }
                }
                (Some(source), _) => {
                    return Err(PlanError::SourceFamily {
                        message,
                        source,
                        destination_is_v6: !destination_is_v4,
                    })
                }
            };
            sources.push(Some(source));
        }
        self.sources = sources;
        Ok(())
    }

    /// Where message `m` leaves from (`None`: the routing's choice).
    pub fn source_of(&self, message: usize) -> Option<PacketSource> {
        self.sources.get(message).copied().flatten()
    }

    /// Number of messages in the plan (one datagram each, except messages with a segment size).
    pub fn len(&self) -> usize {
        if self.first_piece.is_empty() {
            self.piece_lengths.len()
        } else {
            self.first_piece.len() - 1
        }
    }

    /// Whether every message is one piece, to its plan's one destination (or the connected
    /// peer), with no TOS, segment size or source of its own: the plan `trySend(buffers, port,
    /// address)` makes, which `fill_batch` builds without per-message lookups.
    fn is_uniform(&self) -> bool {
        self.first_piece.is_empty()
            && self.message_destinations.is_empty()
            && self.tos.is_empty()
            && self.segment_sizes.is_empty()
            && self.sources.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces of message `m`, as a range of piece indexes.
    pub fn pieces_of(&self, message: usize) -> std::ops::Range<usize> {
        if self.first_piece.is_empty() {
            return message..message + 1;
        }
        self.first_piece[message] as usize..self.first_piece[message + 1] as usize
    }

    /// Where message `m` goes (`None`: the connected peer).
    pub fn destination_of(&self, message: usize) -> Option<&SockAddr> {
        let index = match self.message_destinations.get(message) {
            Some(&index) => index,
            None => 0,
        };
        if index == CONNECTED_PEER {
            return None;
        }
        self.destinations.get(index as usize)
    }

    /// Bytes of message `m` as planned.
    pub fn message_len(&self, message: usize) -> usize {
        self.pieces_of(message)
            .map(|p| self.piece_lengths[p] as usize)
            .sum()
    }

    /// First message at or after `from` one of whose views no longer holds its planned bytes.
    fn first_changed(&self, views: &[&[u8]], from: usize) -> Option<(usize, usize)> {
        (from..self.len()).find_map(|message| {
            self.pieces_of(message)
                .find(|&p| views.get(p).map_or(0, |v| v.len()) < self.piece_lengths[p] as usize)
                .map(|piece| (message, piece))
        })
    }

    /// Sends messages `from..` with the views' current bytes (`views[p]` is piece `p`, looked up
    /// just now with no JavaScript run since), without GSO. See [`SendPlan::send_with_gso`].
    pub fn send(
        &self,
        fd: RawFd,
        scratch: &mut SendScratch,
        views: &[&[u8]],
        from: usize,
        flags: libc::c_int,
    ) -> PlanReport {
        let mut off = GsoSupport::Unavailable;
        self.send_with_gso(fd, scratch, views, from, flags, &mut off)
    }

    /// Sends messages `from..` with the views' current bytes. Exactly the planned number of
    /// bytes of each piece are sent. Stops at "would block", at a failing message, or at a
    /// changed view.
    ///
    /// Where `gso` is available, each run of 2–64 consecutive messages to one destination with
    /// equal lengths (the last of a run may be shorter) leaves as one `UDP_SEGMENT` message: the
    /// kernel cuts it back into exactly those datagrams. If the kernel refuses such a message,
    /// its run is sent again as plain datagrams (each then gets its own verdict), and on `EIO`
    /// / `EOPNOTSUPP` (a device without GSO) the capability is switched off for the socket.
    /// Counts and indexes in the report are always per message of the plan.
    ///
    /// A message with its own segment size leaves as one `UDP_SEGMENT` message of its own
    /// (never merged with others) where GSO is available, else — or when the kernel refuses
    /// it as above — as its datagrams one by one; a report that stops inside it says how many
    /// of them went out ([`PlanReport::segments_sent`]).
    pub fn send_with_gso(
        &self,
        fd: RawFd,
        scratch: &mut SendScratch,
        views: &[&[u8]],
        from: usize,
        flags: libc::c_int,
        gso: &mut GsoSupport,
    ) -> PlanReport {
        let from = PlanPosition {
            message: from,
            segment: 0,
        };
        self.send_from(fd, scratch, views, from, flags, gso)
    }

    /// [`SendPlan::send_with_gso`] from a position inside a message with a segment size (its
    /// first `from.segment` datagrams already sent).
    pub fn send_from(
        &self,
        fd: RawFd,
        scratch: &mut SendScratch,
        views: &[&[u8]],
        from: PlanPosition,
        flags: libc::c_int,
        gso: &mut GsoSupport,
    ) -> PlanReport {
        let changed = self.first_changed(views, from.message);
        let end = changed.map_or(self.len(), |(message, _)| message);
        let mut from = if from.message > end {
            PlanPosition {
                message: end,
                segment: 0,
            }
        } else if from.message < end && from.segment >= self.datagrams_of(from.message) {
            // Every datagram of that message went out: start at the next one.
            PlanPosition {
                message: from.message + 1,
                segment: 0,
            }
        } else {
            from
        };
        let mut use_gso = *gso == GsoSupport::Available;
        loop {
            let pass = self.send_pass(fd, scratch, views, from, end, flags, use_gso);
            match pass {
                Pass::Done(report) => {
                    let stop = match report.stop {
                        PlanStop::Complete => match changed {
                            Some((index, piece)) => PlanStop::ViewChanged { index, piece },
                            None => PlanStop::Complete,
                        },
                        other => other,
                    };
                    // Still at the message it resumed in (e.g. that message's view changed):
                    // its first `from.segment` datagrams did go out, earlier.
                    let segments_sent = if report.sent == from.message {
                        report.segments_sent.max(from.segment)
                    } else {
                        report.segments_sent
                    };
                    return PlanReport {
                        sent: report.sent,
                        stop,
                        segments_sent,
                    };
                }
                Pass::GsoRefused { at: sent, error } => {
                    // The run starting at `sent` goes again as plain datagrams; the rest of
                    // this call goes without GSO too (the next call tries GSO again unless
                    // the device said it has none).
                    if gso::is_gso_refusal(&error) {
                        *gso = GsoSupport::Unavailable;
                    }
                    from = sent;
                    use_gso = false;
                }
            }
        }
    }

    /// Whether messages `a` and `b` go to the same place.
    fn same_destination(&self, a: usize, b: usize) -> bool {
        match (
            self.message_destinations.get(a),
            self.message_destinations.get(b),
        ) {
            (Some(x), Some(y)) => x == y,
            _ => self.message_destinations.is_empty(),
        }
    }

    /// How many messages from `start` (< `end`) can leave as one GSO message (1: none): the
    /// run rule of [`gso_run_of`], joined only by messages to the same place with the same
    /// TOS and source and no segment size of their own.
    fn gso_run(&self, start: usize, end: usize) -> usize {
        let first = (self.message_len(start), self.pieces_of(start).len());
        gso_run_of(start, end, first, |k| {
            let joins = self.same_destination(start, k)
                && self.tos_of(k) == self.tos_of(start)
                && self.segment_size_of(k) == 0
                && self.source_of(k) == self.source_of(start);
            joins.then(|| (self.message_len(k), self.pieces_of(k).len()))
        })
    }

    #[cfg(test)]
    pub(crate) fn gso_run_for_test(&self, start: usize, end: usize) -> usize {
        self.gso_run(start, end)
    }

    /// Puts messages `from..end` into `batch` (as GSO runs where `use_gso`), each piece cut to
    /// its planned length. Where `entries` is wanted (GSO or segment sizes), it records where
    /// in the plan each batch message starts.
    fn fill_batch<'data>(
        &self,
        batch: &mut Batch<'_, 'data>,
        views: &[&'data [u8]],
        from: PlanPosition,
        end: usize,
        use_gso: bool,
        entries: &mut Vec<Entry>,
    ) {
        if self.is_uniform() {
            return self.fill_uniform(batch, views, from.message, end, use_gso, entries);
        }
        let record = use_gso || !self.segment_sizes.is_empty();
        let mut last: Option<(*const SockAddr, crate::send::DestinationId)> = None;
        let mut message = from.message;
        let mut first_segment = from.segment;
        while message < end {
            if !self.segment_sizes.is_empty() && self.segment_size_of(message) != 0 {
                let destination = self.destination_of(message).map(|address| match last {
                    Some((previous, id)) if std::ptr::eq(previous, address) => id,
                    _ => {
                        let id = batch.add_destination(*address);
                        last = Some((address, id));
                        id
                    }
                });
                self.fill_segmented(
                    batch,
                    views,
                    message,
                    first_segment,
                    destination,
                    use_gso,
                    entries,
                );
                message += 1;
                first_segment = 0;
                continue;
            }
            let run = if use_gso {
                self.gso_run(message, end)
            } else {
                1
            };
            let destination = self.destination_of(message).map(|address| match last {
                Some((previous, id)) if std::ptr::eq(previous, address) => id,
                _ => {
                    let id = batch.add_destination(*address);
                    last = Some((address, id));
                    id
                }
            });
            if run > 1 {
                batch.start_message_with_gso(destination, self.message_len(message) as u16);
            } else {
                batch.start_message(destination);
            }
            let tos = self.tos_of(message);
            if tos != 0 && batch.set_tos(tos).is_err() {
                unreachable_plan();
            }
            if let Some(source) = self.source_of(message) {
                if batch.set_source(source).is_err() {
                    unreachable_plan();
                }
            }
            for m in message..message + run {
                for p in self.pieces_of(m) {
                    let bytes = &views[p][..self.piece_lengths[p] as usize];
                    // Cannot fail: `new` and `gso_run` keep every message within IOV_MAX.
                    if batch.add_segment(bytes).is_err() {
                        unreachable_plan();
                    }
                }
            }
            if record {
                entries.push(Entry::run_at(message, run > 1));
            }
            message += run;
        }
    }

    /// [`SendPlan::fill_batch`] for a uniform plan ([`SendPlan::is_uniform`]): the same batch,
    /// built from the lengths alone (one destination added once, runs found by comparing
    /// lengths), without the per-message lookups of the general loop.
    fn fill_uniform<'data>(
        &self,
        batch: &mut Batch<'_, 'data>,
        views: &[&'data [u8]],
        from: usize,
        end: usize,
        use_gso: bool,
        entries: &mut Vec<Entry>,
    ) {
        if from >= end {
            return;
        }
        let destination = self
            .destination_of(from)
            .map(|address| batch.add_destination(*address));
        let lengths = &self.piece_lengths[..end];
        let mut message = from;
        while message < end {
            let run = if use_gso {
                uniform_gso_run(lengths, message)
            } else {
                1
            };
            if run > 1 {
                batch.start_message_with_gso(destination, lengths[message] as u16);
            } else {
                batch.start_message(destination);
            }
            for (view, &length) in views[message..message + run]
                .iter()
                .zip(&lengths[message..message + run])
            {
                // Cannot fail: one piece per message, at most 64 per GSO message.
                if batch.add_segment(&view[..length as usize]).is_err() {
                    unreachable_plan();
                }
            }
            if use_gso {
                entries.push(Entry::run_at(message, run > 1));
            }
            message += run;
        }
    }

    /// Puts message `m` (which has its own segment size), from datagram `first_segment` on,
    /// into `batch`: as one GSO message where `use_gso` and more than one datagram is left, else
    /// as one batch message per datagram, cut at the same boundaries.
    #[allow(clippy::too_many_arguments)]
    fn fill_segmented<'data>(
        &self,
        batch: &mut Batch<'_, 'data>,
        views: &[&'data [u8]],
        message: usize,
        first_segment: usize,
        destination: Option<DestinationId>,
        use_gso: bool,
        entries: &mut Vec<Entry>,
    ) {
        let size = self.segment_size_of(message);
        let len = self.message_len(message);
        let datagrams = self.datagrams_of(message);
        let tos = self.tos_of(message);
        let source = self.source_of(message);
        let mut segment = first_segment.min(datagrams);
        let open = |batch: &mut Batch<'_, 'data>, gso_size: u16| {
            if gso_size != 0 {
                batch.start_message_with_gso(destination, gso_size);
            } else {
                batch.start_message(destination);
            }
            if tos != 0 && batch.set_tos(tos).is_err() {
                unreachable_plan();
            }
            if let Some(source) = source {
                if batch.set_source(source).is_err() {
                    unreachable_plan();
                }
            }
        };
        if use_gso && datagrams - segment > 1 {
            // `set_segment_sizes` checked: at most 64 datagrams, so `size` fits u16 and the
            // rest is one UDP_SEGMENT message.
            open(batch, size as u16);
            self.add_bytes(batch, views, message, segment * size, len);
            entries.push(Entry {
                start: PlanPosition { message, segment },
                gso: true,
            });
            return;
        }
        while segment < datagrams {
            open(batch, 0);
            let start = segment * size;
            self.add_bytes(batch, views, message, start, (start + size).min(len));
            entries.push(Entry {
                start: PlanPosition { message, segment },
                gso: false,
            });
            segment += 1;
        }
    }

    /// Adds bytes `start..end` of message `m` (across its pieces) to the batch's open message.
    fn add_bytes<'data>(
        &self,
        batch: &mut Batch<'_, 'data>,
        views: &[&'data [u8]],
        message: usize,
        start: usize,
        end: usize,
    ) {
        let mut offset = 0;
        for p in self.pieces_of(message) {
            let piece_len = self.piece_lengths[p] as usize;
            let (from, to) = (start.max(offset), end.min(offset + piece_len));
            if from < to {
                let bytes = &views[p][from - offset..to - offset];
                // Cannot fail: a message has at most IOV_MAX pieces (`new`).
                if batch.add_segment(bytes).is_err() {
                    unreachable_plan();
                }
            }
            offset += piece_len;
            if offset >= end {
                break;
            }
        }
    }

    /// One `sendmmsg(2)` call exactly as the man page describes it: the messages before the
    /// first changed view, at most UIO_MAXIOV, no retry, no error recovery, no GSO. Returns each
    /// sent message's `msg_len`; an error only when none was sent.
    pub fn send_once(
        &self,
        fd: RawFd,
        scratch: &mut SendScratch,
        views: &[&[u8]],
        flags: libc::c_int,
    ) -> Result<Vec<u32>, OnceError> {
        let end = self
            .first_changed(views, 0)
            .map_or(self.len(), |(message, _)| message)
            .min(crate::MAX_MESSAGES_PER_CALL);
        if end == 0 && !self.is_empty() {
            return Err(OnceError::ViewChanged);
        }
        let mut batch = scratch.batch();
        self.fill_batch(
            &mut batch,
            views,
            PlanPosition::default(),
            end,
            false,
            &mut Vec::new(),
        );
        let sent = batch.send_once(fd, flags).map_err(OnceError::System)?;
        Ok(batch.bytes_sent()[..sent].to_vec())
    }

    /// One pass: builds the batch for messages `from..end` (GSO runs where allowed) and sends it.
    #[allow(clippy::too_many_arguments)]
    fn send_pass(
        &self,
        fd: RawFd,
        scratch: &mut SendScratch,
        views: &[&[u8]],
        from: PlanPosition,
        end: usize,
        flags: libc::c_int,
        use_gso: bool,
    ) -> Pass {
        let mut entries: Vec<Entry> = Vec::new();
        let record = use_gso || !self.segment_sizes.is_empty();
        let mut batch = scratch.batch();
        self.fill_batch(&mut batch, views, from, end, use_gso, &mut entries);
        let report = batch.send(fd, flags, 0);
        // Batch messages back to places in the plan.
        let to_plan = |batch_index: usize| -> PlanPosition {
            if record {
                entries.get(batch_index).map_or(
                    PlanPosition {
                        message: end,
                        segment: 0,
                    },
                    |entry| entry.start,
                )
            } else {
                PlanPosition {
                    message: from.message + batch_index,
                    segment: 0,
                }
            }
        };
        let sent = to_plan(report.sent);
        let stop = match report.stop {
            SendStop::Complete => PlanStop::Complete,
            SendStop::WouldBlock => PlanStop::WouldBlock,
            SendStop::Failed {
                index,
                error,
                syscall,
            } => {
                if use_gso
                    && entries.get(index).is_some_and(|entry| entry.gso)
                    && report.sent == index
                    && may_be_about_gso(&error)
                {
                    return Pass::GsoRefused {
                        at: to_plan(index),
                        error,
                    };
                }
                PlanStop::Failed {
                    index: to_plan(index).message,
                    error,
                    syscall,
                }
            }
        };
        Pass::Done(PlanReport {
            sent: sent.message,
            stop,
            segments_sent: sent.segment,
        })
    }
}

/// How many messages from `start` (< `end`) can leave as one GSO message (1: none), message
/// `start` being `first` = (bytes, pieces) long: equal lengths, the last possibly shorter, at
/// most 64 datagrams, [`MAX_GSO_BYTES`] and IOV_MAX pieces together. `joinable(k)` is message
/// `k`'s (bytes, pieces), or `None` when it may not join a run begun at `start`.
fn gso_run_of(
    start: usize,
    end: usize,
    first: (usize, usize),
    joinable: impl Fn(usize) -> Option<(usize, usize)>,
) -> usize {
    let (segment, mut pieces) = first;
    if segment == 0 || segment > u16::MAX as usize {
        return 1;
    }
    let mut bytes = segment;
    let mut k = start + 1;
    while k < end && k - start < MAX_GSO_SEGMENTS {
        let Some((len, more_pieces)) = joinable(k) else {
            break;
        };
        if len == 0
            || len > segment
            || bytes + len > MAX_GSO_BYTES
            || pieces + more_pieces > MAX_SEGMENTS_PER_MESSAGE
        {
            break;
        }
        bytes += len;
        pieces += more_pieces;
        k += 1;
        if len < segment {
            break; // only the last segment may be shorter
        }
    }
    k - start
}

/// [`SendPlan::gso_run`] for a uniform plan, from its lengths alone (`lengths` ending where
/// the pass ends): every message is one piece and may join any run.
fn uniform_gso_run(lengths: &[u32], start: usize) -> usize {
    gso_run_of(start, lengths.len(), (lengths[start] as usize, 1), |k| {
        Some((lengths[k] as usize, 1))
    })
}

/// Errors a GSO message can get because it is a GSO message (the device, the segment size
/// against the path MTU), so that its datagrams may still go out one by one. Others (an ICMP
/// report, no route) are the datagrams' own and are reported as they are: resending would
/// consume and lose them.
fn may_be_about_gso(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EIO | libc::EOPNOTSUPP | libc::EINVAL | libc::EMSGSIZE | libc::ENOPROTOOPT)
    )
}

/// Why [`SendPlan::send_once`] sent nothing.
#[derive(Debug)]
pub enum OnceError {
    /// The first message's view was detached or shrunk since it was planned.
    ViewChanged,
    /// The system call failed on the first message.
    System(io::Error),
}

/// The outcome of one [`SendPlan::send_pass`].
enum Pass {
    Done(PlanReport),
    /// A GSO message failed before anything of it went out: resend its run without GSO.
    GsoRefused {
        at: PlanPosition,
        error: io::Error,
    },
}

/// One message of a built batch: where in the plan it starts, and whether it is a GSO message.
#[derive(Clone, Copy, Debug)]
struct Entry {
    start: PlanPosition,
    gso: bool,
}

impl Entry {
    /// A batch message that starts at plan message `message` (a run, or a plain datagram).
    fn run_at(message: usize, gso: bool) -> Entry {
        Entry {
            start: PlanPosition {
                message,
                segment: 0,
            },
            gso,
        }
    }
}

/// Whether a 16-byte IPv6 address is IPv4-mapped (`::ffff:a.b.c.d`).
fn is_v4_mapped(octets: &[u8; 16]) -> bool {
    octets[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
}

#[cold]
fn unreachable_plan() {
    debug_assert!(false, "plan piece counts are checked in SendPlan::new");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn addr(text: &str) -> SockAddr {
        SockAddr::from(text.parse::<SocketAddr>().unwrap())
    }

    /// Lengths that exercise run boundaries: equal runs longer than 64, shorter tails, zero
    /// lengths, lengths over u16::MAX and over the GSO byte limit (a small deterministic PRNG).
    fn awkward_lengths(seed: u64, count: usize) -> Vec<u32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut lengths = Vec::with_capacity(count);
        while lengths.len() < count {
            let len = match next() % 8 {
                0 => 0,
                1 => 70_000,
                2 => 1_500 + (next() % 3) as u32,
                _ => [64, 64, 1200, 63][(next() % 4) as usize],
            };
            let repeat = 1 + (next() % 80) as usize;
            lengths.extend(std::iter::repeat_n(len, repeat));
        }
        lengths.truncate(count);
        lengths
    }

    #[test]
    fn a_uniform_plan_builds_the_batch_the_general_loop_builds() {
        // The same messages as a uniform plan (one piece each, no per-message fields) and as
        // a plan with explicit one-piece counts (the general loop): same messages, GSO sizes,
        // destinations and iovecs, from every start, with GSO and without.
        for seed in 1..40u64 {
            let lengths = awkward_lengths(seed, 300);
            let buffer = vec![0u8; lengths.iter().map(|&l| l as usize).sum::<usize>() + 300];
            // Back to back in one buffer, with a one-byte gap after every seventh datagram.
            let mut views: Vec<&[u8]> = Vec::new();
            let mut at = 0;
            for (i, &len) in lengths.iter().enumerate() {
                views.push(&buffer[at..at + len as usize]);
                at += len as usize + usize::from(i % 7 == 6);
            }
            // To one address, and (no destination at all) to the connected peer.
            let to = if seed % 2 == 0 {
                vec![addr("127.0.0.1:9")]
            } else {
                vec![]
            };
            let uniform = SendPlan::new(lengths.clone(), &[], vec![], to.clone()).unwrap();
            let general =
                SendPlan::new(lengths.clone(), &vec![1; lengths.len()], vec![], to).unwrap();
            assert!(uniform.is_uniform() && !general.is_uniform());
            // Starts and ends (an end before the last message: a view changed there).
            let ranges = [
                (0, 300),
                (0, 1),
                (1, 65),
                (37, 200),
                (63, 128),
                (299, 300),
                (300, 300),
            ];
            for ((from, end), use_gso) in ranges.into_iter().flat_map(|r| [(r, true), (r, false)]) {
                let built = |plan: &SendPlan| {
                    let mut scratch = SendScratch::new();
                    let mut entries = Vec::new();
                    {
                        let mut batch = scratch.batch();
                        let start = PlanPosition {
                            message: from,
                            segment: 0,
                        };
                        plan.fill_batch(&mut batch, &views, start, end, use_gso, &mut entries);
                    }
                    let starts: Vec<(usize, bool)> =
                        entries.iter().map(|e| (e.start.message, e.gso)).collect();
                    (scratch.built(), starts)
                };
                let what = format!("seed {seed}, {from}..{end}, gso {use_gso}");
                assert_eq!(built(&uniform), built(&general), "{what}");
                for start in from..end {
                    assert_eq!(
                        uniform_gso_run(&lengths[..end], start),
                        general.gso_run(start, end),
                        "{what}, run at {start}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_gso_run_rule() {
        let run = |lengths: &[u32], start: usize| uniform_gso_run(lengths, start);
        // Equal lengths join; a shorter one joins as the last; a longer or empty one stops it.
        assert_eq!(run(&[100, 100, 100, 40, 100], 0), 4);
        assert_eq!(run(&[100, 100, 120, 100], 0), 2);
        assert_eq!(run(&[100, 0, 100], 0), 1);
        assert_eq!(run(&[100, 100, 100], 1), 2);
        // No run begins with an empty datagram or one over 65535 bytes.
        assert_eq!(run(&[0, 0, 0], 0), 1);
        assert_eq!(run(&[70_000, 70_000], 0), 1);
        // At most 64 datagrams and MAX_GSO_BYTES (65 000) together.
        assert_eq!(run(&[10; 100], 0), 64);
        assert_eq!(run(&[10; 100], 40), 60);
        assert_eq!(run(&[1_500; 50], 0), 43); // 43 × 1500 = 64 500; one more is 66 000
                                              // The general plan's rule adds its own conditions: a message with a segment size of
                                              // its own, or another destination, ends the run.
        let d = vec![addr("127.0.0.1:9"), addr("127.0.0.1:10")];
        let plan = SendPlan::new(vec![100; 4], &[], vec![0, 0, 1, 1], d).unwrap();
        assert_eq!(plan.gso_run_for_test(0, 4), 2);
    }

    #[test]
    fn one_piece_per_message_by_default() {
        let plan = SendPlan::new(vec![3, 0, 5], &[], vec![], vec![addr("127.0.0.1:9")]).unwrap();
        assert_eq!(plan.len(), 3);
        assert_eq!(plan.pieces_of(1), 1..2);
        assert_eq!(plan.message_len(2), 5);
        assert!(plan.destination_of(2).is_some());
    }

    #[test]
    fn gathers_and_checks_counts() {
        let plan = SendPlan::new(vec![1, 2, 3], &[2, 0, 1], vec![], vec![]).unwrap();
        assert_eq!(plan.len(), 3);
        assert_eq!(plan.pieces_of(0), 0..2);
        assert_eq!(plan.pieces_of(1), 2..2);
        assert_eq!(plan.message_len(0), 3);
        assert!(plan.destination_of(0).is_none());
        assert_eq!(
            SendPlan::new(vec![1, 2], &[1], vec![], vec![]),
            Err(PlanError::PieceCountMismatch {
                pieces: 2,
                counted: 1
            })
        );
        assert!(matches!(
            SendPlan::new(vec![0; 1025], &[1025], vec![], vec![]),
            Err(PlanError::TooManyPieces { .. })
        ));
    }

    #[test]
    fn destination_indexes_are_checked() {
        let d = vec![addr("127.0.0.1:9"), addr("127.0.0.1:10")];
        let plan =
            SendPlan::new(vec![1, 1, 1], &[], vec![1, CONNECTED_PEER, 0], d.clone()).unwrap();
        assert_eq!(plan.destination_of(0), Some(&d[1]));
        assert_eq!(plan.destination_of(1), None);
        assert!(matches!(
            SendPlan::new(vec![1], &[], vec![2], d.clone()),
            Err(PlanError::BadDestination {
                message: 0,
                index: 2
            })
        ));
        assert!(matches!(
            SendPlan::new(vec![1, 1], &[], vec![0], d),
            Err(PlanError::DestinationCountMismatch { .. })
        ));
    }

    #[test]
    fn gso_runs_never_take_in_a_segmented_message_or_another_source() {
        let to = addr("127.0.0.1:9");
        let mut plan = SendPlan::new(vec![8; 8], &[], vec![], vec![to]).unwrap();
        assert_eq!(plan.gso_run(0, 8), 8);
        plan.set_segment_sizes(vec![0, 0, 0, 4, 0, 0, 0, 0])
            .unwrap();
        assert_eq!(plan.gso_run(0, 8), 3, "stops before the segmented message");
        assert_eq!(plan.gso_run(4, 8), 4);
        let one = SourceRequest {
            address: Some("127.0.0.2".parse().unwrap()),
            interface: 0,
        };
        let two = SourceRequest {
            interface: 1,
            ..one
        };
        plan.set_sources(
            vec![
                None,
                None,
                None,
                None,
                Some(one),
                Some(one),
                Some(two),
                None,
            ],
            None,
        )
        .unwrap();
        assert_eq!(plan.gso_run(0, 8), 3);
        assert_eq!(plan.gso_run(4, 8), 2, "same source only");
        assert_eq!(plan.gso_run(6, 8), 1);
    }

    #[test]
    fn a_shrunk_view_stops_the_batch_before_its_message() {
        let plan = SendPlan::new(vec![2, 2, 2], &[1, 2], vec![], vec![]).unwrap();
        let a = [1u8, 2];
        let short = [1u8];
        assert_eq!(plan.first_changed(&[&a, &a, &a], 0), None);
        assert_eq!(plan.first_changed(&[&a, &a, &short], 0), Some((1, 2)));
        assert_eq!(plan.first_changed(&[&short, &a, &a], 0), Some((0, 0)));
        assert_eq!(plan.first_changed(&[&short, &a, &a], 1), None);
        // A view that grew is fine: only the planned bytes go out.
        let long = [1u8, 2, 3];
        assert_eq!(plan.first_changed(&[&long, &a, &a], 0), None);
    }
}
