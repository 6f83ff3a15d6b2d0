//! A fixed-size byte ring: the last `capacity` bytes of a terminal's output.
//!
//! Pure and allocation-free after construction: `push` copies into the ring (at
//! most two `memcpy`s), `snapshot` hands back the two slices in order.

pub struct Ring {
    buf: Box<[u8]>,
    /// Next write position.
    head: usize,
    /// Bytes held (≤ capacity).
    len: usize,
    /// Bytes ever pushed (so callers can tell how much was dropped).
    total: u64,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a ring needs room");
        Self {
            buf: vec![0; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
            total: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn push(&mut self, mut data: &[u8]) {
        let cap = self.buf.len();
        self.total += data.len() as u64;
        if data.len() >= cap {
            // Only the tail fits: it becomes the whole ring.
            data = &data[data.len() - cap..];
            self.buf.copy_from_slice(data);
            self.head = 0;
            self.len = cap;
            return;
        }
        let first = (cap - self.head).min(data.len());
        self.buf[self.head..self.head + first].copy_from_slice(&data[..first]);
        let rest = data.len() - first;
        self.buf[..rest].copy_from_slice(&data[first..]);
        self.head = (self.head + data.len()) % cap;
        self.len = (self.len + data.len()).min(cap);
    }

    /// The held bytes, oldest first, as up to two slices.
    pub fn snapshot(&self) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        if self.len < cap {
            let start = (self.head + cap - self.len) % cap;
            if start + self.len <= cap {
                return (&self.buf[start..start + self.len], &[]);
            }
            return (&self.buf[start..], &self.buf[..self.head]);
        }
        (&self.buf[self.head..], &self.buf[..self.head])
    }

    /// The held bytes in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let (a, b) = self.snapshot();
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;

    /// The reference: keep everything, take the tail.
    fn model(pushes: &[&[u8]], cap: usize) -> Vec<u8> {
        let all: Vec<u8> = pushes.concat();
        all[all.len().saturating_sub(cap)..].to_vec()
    }

    #[test]
    fn matches_the_model_for_every_split() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for cap in [1, 2, 7, 64, 999, 1000, 1001, 4096] {
            for chunk in [1, 3, 10, 63, 64, 65, 500, 1000, 2000] {
                let mut ring = Ring::new(cap);
                let pushes: Vec<&[u8]> = data.chunks(chunk).collect();
                for p in &pushes {
                    ring.push(p);
                }
                assert_eq!(
                    ring.to_vec(),
                    model(&pushes, cap),
                    "cap {cap} chunk {chunk}"
                );
                assert_eq!(ring.total(), 1000);
                assert_eq!(ring.len(), cap.min(1000));
            }
        }
    }

    #[test]
    fn empty_ring_has_nothing() {
        let ring = Ring::new(8);
        assert!(ring.is_empty());
        assert_eq!(ring.to_vec(), Vec::<u8>::new());
    }
}
