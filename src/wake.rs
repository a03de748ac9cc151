//! A socket the shim's Go poller watches, so that Go never waits inside a C call. There are two:
//! the log queue's (a log event is queued) and the keys socket (a fetch ends that a request was
//! told to come back for), so that log lines wake no waiting request.
//!
//! A goroutine blocked in C keeps its Go scheduler slot (a P) until Go's system monitor takes it
//! back, up to about 10 ms later, and every request queued on that slot waits meanwhile. So the
//! shim asks the core not to wait (a token whose issuer is being discovered answers "pending"),
//! parks on the keys socket through Go's poller, and asks again when a byte arrives.

use std::io::Write;
use std::os::unix::io::{IntoRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;

#[derive(Default)]
pub struct Wake {
    // (read end, write end), made when the shim first asks; None if the socket could not be made.
    pair: OnceLock<Option<(UnixStream, UnixStream)>>,
}

impl Wake {
    /// A new descriptor of the read end, non-blocking, owned by the caller; None when the
    /// socket cannot be made (the shim then waits inside the call, as before).
    pub fn reader(&self) -> Option<RawFd> {
        let pair = self.pair.get_or_init(|| {
            let (r, w) = UnixStream::pair().ok()?;
            r.set_nonblocking(true).ok()?;
            w.set_nonblocking(true).ok()?;
            Some((r, w))
        });
        let (r, _) = pair.as_ref()?;
        // try_clone dups with FD_CLOEXEC; the duplicate shares the non-blocking flag.
        Some(r.try_clone().ok()?.into_raw_fd())
    }

    /// Wakes the reader. Never blocks: a full socket already holds a wake-up, so the byte that
    /// does not fit is not needed.
    pub fn signal(&self) {
        if let Some(Some((_, w))) = self.pair.get() {
            let _ = (&*w).write(&[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::io::FromRawFd;

    #[test]
    fn a_signal_is_a_readable_byte_and_a_full_socket_never_blocks() {
        let w = Wake::default();
        w.signal(); // before anyone asked: nothing to wake, nothing made
        let mut r = unsafe { UnixStream::from_raw_fd(w.reader().unwrap()) };
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
        w.signal();
        assert_eq!(r.read(&mut buf).unwrap(), 1);
        for _ in 0..100_000 {
            w.signal();
        }
        assert!(r.read(&mut buf).unwrap() > 0);
    }
}
