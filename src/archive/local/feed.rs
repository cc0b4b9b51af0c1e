//! The receiving side of a local transfer: the network's chunks, gathered (without copying)
//! into batches and handed to the transfer's disk thread (`disk`) through a bounded channel.
//! The receive loop thus never hashes, writes or waits for an `fsync`; it waits only when
//! the disk thread is a whole queue behind, which is what bounds memory.
//!
//! **Memory.** A transfer holds at most `QUEUE_DEPTH + 2` batches that are not written yet:
//! one being written by the disk thread, `QUEUE_DEPTH` queued, and one waiting for room
//! (the receive loop reads nothing meanwhile). A batch is sent once it holds
//! [`BATCH_BYTES`], so it holds less than `BATCH_BYTES` plus one HTTP chunk (hyper reads at
//! most about 400 KiB at once): with 512 KiB batches and a depth of 2, under 3.6 MiB per
//! transfer, and under 29 MiB for 8 transfers ([`MAX_BUFFERED`]), which leaves the rest of
//! the 64 MiB budget of a process with 8 transfers to the program itself (about 20 MiB).
//! A couple of MiB of queue already absorbs the jitter between the two sides: at 1 GB/s
//! a batch is half a millisecond of network.

use bytes::Bytes;
use tokio::sync::mpsc;

/// Bytes gathered before they go to the disk thread: one `writev` and one wake-up each.
pub(super) const BATCH_BYTES: usize = 512 * 1024;

/// Batches waiting for the disk thread.
pub(super) const QUEUE_DEPTH: usize = 2;

/// The largest chunk hyper hands over (its largest read buffer, 8 KiB + 100 × 4 KiB).
const MAX_CHUNK: usize = 8192 + 100 * 4096;

/// Bytes a transfer may hold received but not written, at most (see the module's doc).
pub(super) const MAX_BUFFERED: usize = (QUEUE_DEPTH + 2) * (BATCH_BYTES + MAX_CHUNK);

// Eight transfers must leave most of a 64 MiB process budget to the rest of the program.
const _: () = assert!(8 * MAX_BUFFERED <= 32 * 1024 * 1024);

/// What the receiving side tells the disk thread, in stream order.
pub(super) enum Message {
    /// The next bytes of the file.
    Data(Vec<Bytes>),
    /// The last message.
    End(End),
}

/// How a transfer ends, once every byte sent before is written.
#[derive(Debug, Clone, Copy)]
pub(super) enum End {
    /// Make everything durable and record it as the resume point.
    Pause,
    /// Make everything durable under the final name.
    Finish,
}

/// The disk thread has stopped (its result says why); nothing more can be sent.
#[derive(Debug)]
pub(super) struct Stopped;

/// The sending end, with the batch being gathered.
pub(super) struct Feed {
    tx: Option<mpsc::Sender<Message>>,
    batch: Vec<Bytes>,
    batched: usize,
    received: u64,
}

impl Feed {
    /// A feed for a file whose first `offset` bytes are already written, and the receiver
    /// the disk thread reads.
    pub(super) fn new(offset: u64) -> (Self, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let feed = Self {
            tx: Some(tx),
            batch: Vec::new(),
            batched: 0,
            received: offset,
        };
        (feed, rx)
    }

    /// Bytes of the file received so far: written, queued or gathered.
    pub(super) fn received(&self) -> u64 {
        self.received
    }

    /// Takes `chunk`; waits only if a full batch finds the queue full.
    pub(super) async fn push(&mut self, chunk: Bytes) -> Result<(), Stopped> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.received += chunk.len() as u64;
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= BATCH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends what is gathered, then `end`, and closes the feed.
    pub(super) async fn end(&mut self, end: End) -> Result<(), Stopped> {
        self.flush().await?;
        self.send(Message::End(end)).await?;
        self.close();
        Ok(())
    }

    /// Closes the feed without a last message: the disk thread stops where it is and
    /// records nothing more.
    pub(super) fn close(&mut self) {
        self.tx = None;
        self.batch = Vec::new();
        self.batched = 0;
    }

    async fn flush(&mut self) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        self.send(Message::Data(batch)).await
    }

    async fn send(&mut self, message: Message) -> Result<(), Stopped> {
        let tx = self.tx.as_ref().ok_or(Stopped)?;
        tx.send(message).await.map_err(|_| Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    /// Polls `push` once, outside tokio's cooperative budget: `Some` if it took the chunk
    /// without waiting.
    fn try_push(feed: &mut Feed, chunk: Bytes) -> Option<Result<(), Stopped>> {
        tokio::task::unconstrained(feed.push(chunk)).now_or_never()
    }

    #[tokio::test]
    async fn a_stalled_disk_thread_stops_the_receiver_within_the_bound() {
        let (mut feed, mut rx) = Feed::new(0);
        let chunk = Bytes::from(vec![7u8; 64 * 1024]);
        let mut accepted = 0usize;
        while let Some(result) = try_push(&mut feed, chunk.clone()) {
            result.unwrap();
            accepted += chunk.len();
            assert!(
                accepted <= MAX_BUFFERED,
                "took {accepted} bytes from a stalled thread"
            );
        }
        // It waited only once the queue was full (the batch it waits with was dropped).
        assert!(
            accepted >= QUEUE_DEPTH * BATCH_BYTES,
            "stopped at {accepted}"
        );
        let mut queued = 0;
        while let Ok(Message::Data(batch)) = rx.try_recv() {
            queued += batch.iter().map(Bytes::len).sum::<usize>();
        }
        assert_eq!(queued, QUEUE_DEPTH * BATCH_BYTES);
        // Room again: it takes chunks again.
        assert!(try_push(&mut feed, chunk).is_some());
    }

    #[tokio::test]
    async fn batches_keep_the_stream_order_and_end_with_the_last_message() {
        let (mut feed, mut rx) = Feed::new(100);
        let reader = tokio::spawn(async move {
            let mut bytes: Vec<u8> = Vec::new();
            loop {
                match rx.recv().await {
                    Some(Message::Data(batch)) => batch.iter().for_each(|c| bytes.extend(c)),
                    Some(Message::End(End::Finish)) => return (bytes, rx.recv().await.is_none()),
                    Some(Message::End(End::Pause)) | None => panic!("no Finish"),
                }
            }
        });
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(70_001) {
            feed.push(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        assert_eq!(feed.received(), 100 + data.len() as u64);
        feed.end(End::Finish).await.unwrap();
        let (got, closed) = reader.await.unwrap();
        assert!(got == data && closed);
        assert!(feed.end(End::Pause).await.is_err(), "the feed is closed");
    }

    #[tokio::test]
    async fn a_stopped_disk_thread_is_seen_by_the_receiver() {
        let (mut feed, rx) = Feed::new(0);
        drop(rx);
        let big = Bytes::from(vec![0u8; BATCH_BYTES]);
        assert!(feed.push(big).await.is_err());
    }
}
