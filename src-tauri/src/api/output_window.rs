//! Terminal output for a front-end that takes it in at its own pace (the app's
//! xterm.js, behind Tauri's IPC): flow control, as VS Code's terminals do it.
//!
//! Without it, output is handed over as fast as the node sends it, and what the
//! webview has not parsed yet piles up in the app's memory (a `cat` of a large
//! file grows it by the file's size) while each small message pays a whole IPC
//! round of its own. Instead, at most [`OUTPUT_WINDOW`] bytes are out without
//! the front-end's acknowledgement ([`OutputCredit::ack`]); while the window is
//! full the connection is not read, so the node paces the terminal (its PTY is
//! not read either). Bytes that queued meanwhile go out together, in messages
//! of up to [`MAX_MESSAGE`], so a flood costs few IPC rounds, and a keystroke's
//! echo still goes out at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::BytesMut;
use tokio::sync::Notify;

use super::terminals::{OutputStream, TerminalOutput};

/// Bytes handed to the front-end and not yet acknowledged, at most.
pub const OUTPUT_WINDOW: usize = 1 << 20;
/// Queued bytes are joined into one message up to this size (the chunk that
/// crosses it is not split).
pub const MAX_MESSAGE: usize = 256 << 10;

/// What the front-end has not acknowledged yet, shared with whoever takes its acks.
#[derive(Debug, Default)]
pub struct OutputCredit {
    unacked: AtomicUsize,
    acked: Notify,
    closed: AtomicBool,
}

impl OutputCredit {
    /// The front-end has taken in `bytes` more (more than is out counts as all).
    pub fn ack(&self, bytes: usize) {
        let _ = self
            .unacked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(bytes))
            });
        self.acked.notify_one();
    }

    /// The front-end has gone (its view closed, or another took its place): the
    /// relay ends, also while it waits for acks that will not come.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.acked.notify_one();
    }

    fn unacked(&self) -> usize {
        self.unacked.load(Ordering::Acquire)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Waits until the window has room; false once closed.
    async fn room(&self) -> bool {
        // `notify_one` keeps a permit when nobody waits, so an ack between the
        // check and the wait is not lost.
        while self.unacked() >= OUTPUT_WINDOW && !self.is_closed() {
            self.acked.notified().await;
        }
        !self.is_closed()
    }
}

/// Hands a terminal's output to `deliver` in order (bytes coalesced, see the
/// module), until the output ends, the credit is closed, or `deliver` answers
/// false (the front-end is gone).
pub async fn relay(
    mut output: OutputStream<TerminalOutput>,
    credit: &OutputCredit,
    mut deliver: impl FnMut(TerminalOutput) -> bool,
) {
    // An item taken from the stream that must wait for the bytes before it.
    let mut held: Option<TerminalOutput> = None;
    loop {
        if !credit.room().await {
            return;
        }
        let item = match held.take() {
            Some(item) => item,
            None => match output.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        let TerminalOutput::Bytes(first) = item else {
            if !deliver(item) {
                return;
            }
            continue;
        };
        // What queued up behind it goes in the same message.
        let mut message = BytesMut::from(first.as_ref());
        while message.len() < MAX_MESSAGE {
            match output.try_recv() {
                Some(TerminalOutput::Bytes(b)) => message.extend_from_slice(&b),
                Some(other) => {
                    held = Some(other);
                    break;
                }
                None => break,
            }
        }
        credit.unacked.fetch_add(message.len(), Ordering::AcqRel);
        if !deliver(TerminalOutput::Bytes(message.freeze())) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::sync::mpsc;

    use super::*;

    const CHUNK: usize = 16_384;
    /// Three windows' worth of chunks.
    const CHUNKS: u32 = (3 * OUTPUT_WINDOW / CHUNK) as u32;

    /// A relay fed by a channel, delivering into a shared list.
    fn start(
        credit: Arc<OutputCredit>,
    ) -> (
        mpsc::Sender<TerminalOutput>,
        Arc<Mutex<Vec<TerminalOutput>>>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::channel(1024);
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let task = tokio::spawn(async move {
            relay(OutputStream::from_receiver(rx), &credit, |item| {
                sink.lock().expect("lock").push(item);
                true
            })
            .await;
        });
        (tx, got, task)
    }

    fn bytes_in(items: &[TerminalOutput]) -> usize {
        items
            .iter()
            .map(|i| match i {
                TerminalOutput::Bytes(b) => b.len(),
                _ => 0,
            })
            .sum()
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn a_full_window_stops_delivery_until_acks_and_queued_bytes_go_out_together() {
        let credit = Arc::new(OutputCredit::default());
        let (tx, got, task) = start(credit.clone());
        // Far more than the window, queued at once.
        let total = CHUNKS as usize * CHUNK;
        for i in 0..CHUNKS {
            let chunk = vec![(i % 251) as u8; CHUNK];
            tx.send(TerminalOutput::Bytes(Bytes::from(chunk)))
                .await
                .expect("send");
        }
        settle().await;
        let out = bytes_in(&got.lock().expect("lock"));
        assert!(out >= OUTPUT_WINDOW, "{out} bytes out");
        assert!(
            out < OUTPUT_WINDOW + MAX_MESSAGE + CHUNK,
            "{out} bytes out with no ack"
        );
        // Queued chunks were coalesced: few messages, none over the limit.
        let messages = got.lock().expect("lock").len();
        assert!(
            messages <= OUTPUT_WINDOW / MAX_MESSAGE + 1,
            "{messages} messages"
        );
        // Acks let the rest through.
        while bytes_in(&got.lock().expect("lock")) < total {
            credit.ack(MAX_MESSAGE);
            settle().await;
        }
        let items = got.lock().expect("lock").clone();
        assert!(items.iter().all(|i| match i {
            TerminalOutput::Bytes(b) => b.len() < MAX_MESSAGE + CHUNK,
            _ => false,
        }));
        // Byte for byte, in order.
        let all: Vec<u8> = items
            .iter()
            .flat_map(|i| match i {
                TerminalOutput::Bytes(b) => b.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        let expected: Vec<u8> = (0..CHUNKS)
            .flat_map(|i| vec![(i % 251) as u8; CHUNK])
            .collect();
        assert!(all == expected, "the bytes changed on the way");
        // The view takes in the rest; the output ends, and so does the relay.
        credit.ack(usize::MAX);
        drop(tx);
        task.await.expect("relay");
    }

    #[tokio::test]
    async fn controls_keep_their_place_and_a_single_echo_goes_out_at_once() {
        let credit = Arc::new(OutputCredit::default());
        let (tx, got, task) = start(credit.clone());
        tx.send(TerminalOutput::Bytes(Bytes::from_static(b"x")))
            .await
            .expect("send");
        settle().await;
        assert_eq!(
            got.lock().expect("lock").as_slice(),
            &[TerminalOutput::Bytes(Bytes::from_static(b"x"))]
        );
        for item in [
            TerminalOutput::Bytes(Bytes::from_static(b"ab")),
            TerminalOutput::Bytes(Bytes::from_static(b"cd")),
            TerminalOutput::Exit(3),
        ] {
            tx.send(item).await.expect("send");
        }
        drop(tx);
        task.await.expect("relay");
        let items = got.lock().expect("lock").clone();
        let tail: Vec<TerminalOutput> = items[1..].to_vec();
        // "ab" and "cd" may come as one message or two, but before the exit.
        let joined: Vec<u8> = tail
            .iter()
            .filter_map(|i| match i {
                TerminalOutput::Bytes(b) => Some(b.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(joined, b"abcd");
        assert_eq!(tail.last(), Some(&TerminalOutput::Exit(3)));
    }

    #[tokio::test]
    async fn closing_ends_a_relay_that_waits_for_acks() {
        let credit = Arc::new(OutputCredit::default());
        let (tx, got, task) = start(credit.clone());
        tx.send(TerminalOutput::Bytes(Bytes::from(vec![
            0;
            2 * OUTPUT_WINDOW
        ])))
        .await
        .expect("send");
        tx.send(TerminalOutput::Bytes(Bytes::from_static(b"more")))
            .await
            .expect("send");
        settle().await;
        assert_eq!(got.lock().expect("lock").len(), 1);
        credit.close();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the relay ended")
            .expect("relay");
        assert_eq!(got.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn acks_beyond_what_is_out_do_not_open_the_window_wider() {
        let credit = OutputCredit::default();
        credit.ack(10 * OUTPUT_WINDOW);
        assert_eq!(credit.unacked(), 0);
        credit.unacked.fetch_add(OUTPUT_WINDOW, Ordering::AcqRel);
        credit.ack(1);
        assert_eq!(credit.unacked(), OUTPUT_WINDOW - 1);
    }
}
