//! Asynchronous sends that had to wait: what they keep alive and how they resume.
//!
//! When the kernel answers EAGAIN, the rest of the batch is recorded here: the JS buffers are
//! held by one private JS array (so they stay alive until the promise settles), and each
//! message remembers which holder, offset and length its bytes come from. On every resume the
//! bytes are looked up again from the holders, so a buffer that was detached meanwhile is
//! detected instead of read.

use mmsg_core::{SendReport, SendScratch, SendStop, SockAddr};
use napi::bindgen_prelude::{Array, FromNapiValue, JsObjectValue, Object, ObjectRef, Unknown};
use napi::JsValue;
use napi::{Env, Error, JsDeferred, Result};

use crate::convert::MessageSink;
use crate::errors::{send_error_at, type_error_at};

pub type Resolver = Box<dyn FnOnce(Env) -> Result<u32>>;

#[derive(Clone, Copy)]
struct PendingSegment {
    holder: u32,
    offset: u32,
    len: u32,
}

#[derive(Clone, Copy)]
struct PendingMessage {
    first_segment: u32,
    segment_count: u32,
    destination: Option<SockAddr>,
}

/// A `send()` that is waiting for the socket to become writable.
pub struct PendingSend {
    holders: Option<ObjectRef<false>>,
    holder_count: u32,
    segments: Vec<PendingSegment>,
    messages: Vec<PendingMessage>,
    /// Next message (index into `messages`) to send.
    next: usize,
    /// Messages of the original call sent before it was queued.
    sent_before: usize,
    flags: i32,
    deferred: Option<JsDeferred<u32, Resolver>>,
}

/// How a resume attempt ended for the send at the front of the queue.
pub enum Progress {
    /// Still waiting for writability.
    Blocked,
    /// Settled (resolved or rejected); remove it and go on with the next.
    Settled,
}

impl PendingSend {
    pub fn new(
        env: &Env,
        sent_before: usize,
        flags: i32,
        deferred: JsDeferred<u32, Resolver>,
    ) -> Result<Self> {
        let holders = Array::from_vec(env, Vec::<u32>::new())?;
        Ok(PendingSend {
            holders: Some(ObjectRef::from_unknown(holders.to_unknown())?),
            holder_count: 0,
            segments: Vec::new(),
            messages: Vec::new(),
            next: 0,
            sent_before,
            flags,
            deferred: Some(deferred),
        })
    }

    /// Index, in the caller's batch, of the next message to send.
    fn batch_index(&self) -> usize {
        self.sent_before + self.next
    }

    /// Sends as much as the socket takes, from where the last attempt stopped.
    pub fn resume(&mut self, env: &Env, fd: i32, scratch: &mut SendScratch) -> Progress {
        let holders_ref = self.holders.as_ref().expect("holders live until settled");
        let holders = match holders_ref
            .get_value(env)
            .and_then(|o| Array::from_unknown(o.to_unknown()))
        {
            Ok(h) => h,
            Err(e) => {
                self.reject(env, e);
                return Progress::Settled;
            }
        };
        while self.next < self.messages.len() {
            let chunk_end = (self.next + mmsg_core::MAX_MESSAGES_PER_CALL).min(self.messages.len());
            // A buffer that was detached or shrunk while we waited: the messages before it are
            // still sent, then the promise rejects naming it.
            let mut bad_buffer: Option<(usize, String)> = None;
            let report = {
                let mut batch = scratch.batch();
                let mut last: Option<(SockAddr, mmsg_core::DestinationId)> = None;
                'messages: for (offset, message) in
                    self.messages[self.next..chunk_end].iter().enumerate()
                {
                    let destination = message.destination.map(|address| match last {
                        Some((previous, id)) if previous == address => id,
                        _ => {
                            let id = batch.add_destination(address);
                            last = Some((address, id));
                            id
                        }
                    });
                    batch.start_message(destination);
                    let first = message.first_segment as usize;
                    for segment in &self.segments[first..first + message.segment_count as usize] {
                        match holder_bytes(&holders, *segment) {
                            // Cannot exceed IOV_MAX: the count was checked when queued.
                            Some(bytes) => batch.add_segment(bytes).expect("checked when queued"),
                            None => {
                                batch.truncate(offset);
                                bad_buffer = Some((
                                    self.sent_before + self.next + offset,
                                    "a buffer of a pending send was detached or shrunk before it was sent".to_owned(),
                                ));
                                break 'messages;
                            }
                        }
                    }
                }
                batch.send(fd, self.flags, 0)
            };
            let SendReport { sent, stop } = report;
            self.next += sent;
            match stop {
                SendStop::Complete => {
                    if let Some((index, message)) = bad_buffer {
                        let error = type_error_at(env, message, index, index);
                        self.reject(env, error);
                        return Progress::Settled;
                    }
                }
                SendStop::WouldBlock => return Progress::Blocked,
                SendStop::Failed(error) => {
                    let js_error = send_error_at(env, &error, self.batch_index());
                    self.reject(env, js_error);
                    return Progress::Settled;
                }
            }
        }
        let total = self.batch_index() as u32;
        self.release(env);
        if let Some(deferred) = self.deferred.take() {
            deferred.resolve(Box::new(move |_| Ok(total)));
        }
        Progress::Settled
    }

    /// Rejects because the socket closed, telling how many datagrams went out first.
    pub fn reject_closed(&mut self, env: &Env) {
        let sent = self.batch_index();
        let error = crate::errors::closed_error_after(env, sent);
        self.reject(env, error);
    }

    /// Rejects the promise with `error` and drops the buffers.
    pub fn reject(&mut self, env: &Env, error: Error) {
        self.release(env);
        if let Some(deferred) = self.deferred.take() {
            deferred.reject(error);
        }
    }

    fn release(&mut self, env: &Env) {
        if let Some(holders) = self.holders.take() {
            let _ = holders.unref(env);
        }
    }
}

/// The bytes of one queued segment, or `None` if its buffer was detached or shrunk.
fn holder_bytes<'env>(holders: &Array<'env>, segment: PendingSegment) -> Option<&'env [u8]> {
    let holder: Unknown<'env> = holders.get::<Unknown>(segment.holder).ok().flatten()?;
    let bytes = <&[u8]>::from_unknown(holder).ok()?;
    let start = segment.offset as usize;
    bytes.get(start..start + segment.len as usize)
}

/// Records messages into a [`PendingSend`] instead of a batch.
pub struct PendingSink<'p> {
    pub pending: &'p mut PendingSend,
    /// All segments come from one holder (the packed shape): store it once.
    pub shared_holder: bool,
    holders: Option<Object<'p>>,
}

impl<'p> PendingSink<'p> {
    pub fn new(env: &'p Env, pending: &'p mut PendingSend, shared_holder: bool) -> Result<Self> {
        let holders = pending
            .holders
            .as_ref()
            .expect("holders live until settled")
            .get_value(env)?;
        Ok(PendingSink {
            pending,
            shared_holder,
            holders: Some(holders),
        })
    }
}

impl<'env> MessageSink<'env> for PendingSink<'_> {
    fn start_message(&mut self, _env: &Env, destination: Option<SockAddr>) -> Result<()> {
        self.pending.messages.push(PendingMessage {
            first_segment: self.pending.segments.len() as u32,
            segment_count: 0,
            destination,
        });
        Ok(())
    }

    fn segment(
        &mut self,
        _env: &Env,
        holder: Unknown<'env>,
        offset: usize,
        bytes: &'env [u8],
    ) -> Result<()> {
        let holders = self.holders.as_mut().expect("set in new");
        let index = if self.shared_holder && self.pending.holder_count > 0 {
            0
        } else {
            holders.set_element(self.pending.holder_count, holder)?;
            self.pending.holder_count += 1;
            self.pending.holder_count - 1
        };
        self.pending.segments.push(PendingSegment {
            holder: index,
            offset: offset as u32,
            len: bytes.len() as u32,
        });
        if let Some(message) = self.pending.messages.last_mut() {
            message.segment_count += 1;
        }
        Ok(())
    }
}
