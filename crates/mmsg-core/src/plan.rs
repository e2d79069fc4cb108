//! A send plan: a batch described as plain data (lengths, counts, destination indexes), made
//! before any memory is borrowed.
//!
//! The binding builds a [`SendPlan`] while it reads JavaScript values (phase 1, when user code
//! can run). Only then, with no JavaScript able to run, does it look up each view's current
//! bytes (phase 2) and call [`SendPlan::send`] with them. A view that was detached, transferred
//! or shrunk in between is caught here, by comparing its current length with the planned one:
//! the messages before it are sent, and it fails with [`PlanStop::ViewChanged`].

use std::io;
use std::os::fd::RawFd;

use crate::addr::SockAddr;
use crate::send::{SendScratch, SendStop, MAX_SEGMENTS_PER_MESSAGE};

/// Marks a message that goes to the connected peer (no `msg_name`).
pub const CONNECTED_PEER: u32 = u32::MAX;

/// Most messages one plan may hold (the binding refuses more before allocating).
pub const MAX_PLAN_MESSAGES: usize = 1 << 24;

/// A planned batch. Piece `p` is the `p`-th view; message `m` gathers
/// `pieces_per_message[m]` consecutive pieces (one each when the list is empty).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SendPlan {
    /// The length each piece had when it was validated: exactly this many bytes are sent.
    pub piece_lengths: Vec<u32>,
    /// First piece of each message, and one past the last at the end (`messages + 1` entries).
    first_piece: Vec<u32>,
    /// Index into `destinations`, or [`CONNECTED_PEER`], per message; empty: all messages to
    /// `destinations[0]` if there is one, else to the connected peer.
    message_destinations: Vec<u32>,
    pub destinations: Vec<SockAddr>,
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
            PlanError::TooManyMessages(n) => write!(
                f,
                "a batch may hold at most {MAX_PLAN_MESSAGES} messages; got {n}"
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
    /// Message `index` failed (see [`SendStop::Failed`] for how `sent` relates to it).
    Failed {
        index: usize,
        error: io::Error,
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
        let mut first_piece = Vec::with_capacity(messages + 1);
        if pieces_per_message.is_empty() {
            first_piece.extend(0..=pieces as u32);
        } else {
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
        })
    }

    /// Number of messages (datagrams) in the plan.
    pub fn len(&self) -> usize {
        self.first_piece.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces of message `m`, as a range of piece indexes.
    pub fn pieces_of(&self, message: usize) -> std::ops::Range<usize> {
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
    /// just now with no JavaScript run since). Exactly the planned number of bytes of each piece
    /// are sent. Stops at "would block", at a failing message, or at a changed view.
    pub fn send(
        &self,
        fd: RawFd,
        scratch: &mut SendScratch,
        views: &[&[u8]],
        from: usize,
        flags: libc::c_int,
    ) -> PlanReport {
        let changed = self.first_changed(views, from);
        let end = changed.map_or(self.len(), |(message, _)| message);
        let from = from.min(end);
        let mut batch = scratch.batch();
        let mut last: Option<(*const SockAddr, crate::send::DestinationId)> = None;
        for message in from..end {
            let destination = self.destination_of(message).map(|address| match last {
                Some((previous, id)) if std::ptr::eq(previous, address) => id,
                _ => {
                    let id = batch.add_destination(*address);
                    last = Some((address, id));
                    id
                }
            });
            batch.start_message(destination);
            for p in self.pieces_of(message) {
                let bytes = &views[p][..self.piece_lengths[p] as usize];
                // Cannot fail: `new` checked every count against IOV_MAX.
                if batch.add_segment(bytes).is_err() {
                    unreachable_plan();
                }
            }
        }
        let report = batch.send(fd, flags, 0);
        let sent = from + report.sent;
        let stop = match report.stop {
            SendStop::Complete => match changed {
                Some((index, piece)) => PlanStop::ViewChanged { index, piece },
                None => PlanStop::Complete,
            },
            SendStop::WouldBlock => PlanStop::WouldBlock,
            SendStop::Failed { index, error } => PlanStop::Failed {
                index: from + index,
                error,
            },
        };
        PlanReport { sent, stop }
    }
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
