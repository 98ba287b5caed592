//! The upgrade protocol on the rendezvous socket: the header that travels with the sockets,
//! the new process's one-line answer, and the SCM_RIGHTS transfer itself.
//!
//! ```text
//!  old → new, one sendmsg; its SCM_RIGHTS carries every fd, in the order of the roles:
//!      goaround-upgrade 1\n
//!      sockets N\n
//!      ROLE\n               N lines, ROLE = client | metrics | control
//!      \n
//!  new → old, one line:
//!      ready PID\n          serving: the old process may stop accepting
//!      error TEXT\n         giving up; the old process logs TEXT and keeps serving
//! ```
//!
//! Text, so that a capture or `strace -s` reads as what it is. A new process that does not
//! know the version answers `error` and the old one keeps serving, so an upgrade between
//! incompatible releases fails safely. The codec (`encode_*`/`parse_*`) does no I/O; parsers
//! take everything received so far and return `None` while it is incomplete.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{
    recvmsg, sendmsg, sockopt, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags,
    ReturnFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketType,
};

use super::{SocketRole, UpgradeError};

/// First word of the header.
const MAGIC: &str = "goaround-upgrade";

/// Protocol version; bumped on any incompatible change.
const VERSION: u32 = 1;

/// Most sockets one handover carries: the kernel's `SCM_MAX_FD`, the most file descriptors
/// one SCM_RIGHTS message may hold.
pub const MAX_SOCKETS: usize = 253;

/// Longest header accepted (`MAX_SOCKETS` role lines fit many times over).
const MAX_HEADER: usize = 16 * 1024;

/// Longest answer line accepted from the new process.
const MAX_ANSWER: usize = 4096;

/// The header announcing `roles`, in fd order.
pub(super) fn encode_header(roles: &[SocketRole]) -> Vec<u8> {
    let mut out = format!("{MAGIC} {VERSION}\nsockets {}\n", roles.len());
    for role in roles {
        out.push_str(role.as_str());
        out.push('\n');
    }
    out.push('\n');
    out.into_bytes()
}

/// The roles of a complete header; `None` while the blank line that ends it has not arrived.
pub(super) fn parse_header(received: &[u8]) -> Result<Option<Vec<SocketRole>>, UpgradeError> {
    let protocol = |what: String| UpgradeError::Protocol(what);
    let Some(end) = find(received, b"\n\n") else {
        if received.len() > MAX_HEADER {
            return Err(protocol(format!("header longer than {MAX_HEADER} bytes")));
        }
        return Ok(None);
    };
    if end + 2 != received.len() {
        return Err(protocol("bytes after the header".into()));
    }
    let text = std::str::from_utf8(&received[..end])
        .map_err(|_| protocol("header is not UTF-8".into()))?;
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    match first.split_once(' ') {
        Some((MAGIC, version)) if version == VERSION.to_string() => {}
        Some((MAGIC, version)) => {
            return Err(protocol(format!(
                "protocol version {version:?}, this binary speaks {VERSION}"
            )))
        }
        _ => return Err(protocol(format!("not an upgrade header: {first:?}"))),
    }
    let count = lines
        .next()
        .and_then(|l| l.strip_prefix("sockets "))
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| protocol("no 'sockets N' line".into()))?;
    let roles = lines
        .map(|word| {
            SocketRole::from_wire(word).ok_or_else(|| protocol(format!("unknown role {word:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if roles.len() != count {
        return Err(protocol(format!(
            "header announces {count} sockets and names {}",
            roles.len()
        )));
    }
    Ok(Some(roles))
}

/// What the new process answers once it has its sockets.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// Serving; its pid.
    Ready(u32),
    /// Cannot serve, and why.
    Error(String),
}

pub(super) fn encode_answer(answer: &Answer) -> Vec<u8> {
    match answer {
        Answer::Ready(pid) => format!("ready {pid}\n").into_bytes(),
        // One line: the reason must not end the message early.
        Answer::Error(why) => format!("error {}\n", why.replace(['\r', '\n'], " ")).into_bytes(),
    }
}

/// The answer in `received`; `None` until its newline has arrived.
pub(super) fn parse_answer(received: &[u8]) -> Result<Option<Answer>, UpgradeError> {
    let Some(end) = received.iter().position(|&b| b == b'\n') else {
        if received.len() > MAX_ANSWER {
            return Err(UpgradeError::Protocol(format!(
                "answer longer than {MAX_ANSWER} bytes"
            )));
        }
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&received[..end]);
    let answer = match line.split_once(' ') {
        Some(("ready", pid)) => pid.parse().ok().map(Answer::Ready),
        Some(("error", why)) => Some(Answer::Error(why.to_owned())),
        _ => None,
    };
    answer
        .map(Some)
        .ok_or_else(|| UpgradeError::Protocol(format!("unexpected answer {line:?}")))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends the header and, attached to it, every socket (old side).
pub(super) fn send_sockets(
    stream: &UnixStream,
    sockets: &[(SocketRole, BorrowedFd<'_>)],
) -> Result<(), UpgradeError> {
    if sockets.len() > MAX_SOCKETS {
        return Err(UpgradeError::TooManySockets(sockets.len()));
    }
    let roles: Vec<SocketRole> = sockets.iter().map(|(role, _)| *role).collect();
    let fds: Vec<BorrowedFd<'_>> = sockets.iter().map(|(_, fd)| *fd).collect();
    let header = encode_header(&roles);
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(UpgradeError::TooManySockets(fds.len()));
    }
    let sent = sendmsg(
        stream,
        &[IoSlice::new(&header)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(|e| UpgradeError::Io("sending the sockets", e.into()))?;
    // The fds went with the first byte; a short write only leaves plain bytes to send.
    (&*stream)
        .write_all(&header[sent..])
        .map_err(|e| UpgradeError::Io("sending the header", e))
}

/// Receives the header and the sockets attached to it (new side). The fds are close-on-exec,
/// and each is checked to be a listening socket of the kind its role needs.
pub(super) fn receive_sockets(
    stream: &UnixStream,
) -> Result<Vec<(SocketRole, OwnedFd)>, UpgradeError> {
    let mut received = vec![0u8; MAX_HEADER];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut received)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| UpgradeError::Io("receiving the sockets", e.into()))?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(UpgradeError::Protocol(
            "more file descriptors than announced (some were dropped)".into(),
        ));
    }
    if msg.bytes == 0 {
        return Err(UpgradeError::Protocol(
            "the old process closed the connection before sending the sockets".into(),
        ));
    }
    received.truncate(msg.bytes);
    let roles = loop {
        if let Some(roles) = parse_header(&received)? {
            break roles;
        }
        let mut more = [0u8; 1024];
        match (&*stream).read(&mut more) {
            Ok(0) => {
                return Err(UpgradeError::Protocol(
                    "the old process closed the connection inside the header".into(),
                ))
            }
            Ok(n) => received.extend_from_slice(&more[..n]),
            Err(e) => return Err(UpgradeError::Io("receiving the header", e)),
        }
    };
    if roles.len() != fds.len() {
        return Err(UpgradeError::Protocol(format!(
            "header names {} sockets, {} arrived",
            roles.len(),
            fds.len()
        )));
    }
    roles
        .into_iter()
        .zip(fds)
        .map(|(role, fd)| check_socket(role, fd.as_fd()).map(|()| (role, fd)))
        .collect()
}

/// The socket must listen, on TCP for the client and metrics roles, on a unix stream socket
/// for the control role: a confused sender must not make us accept on the wrong thing.
fn check_socket(role: SocketRole, fd: BorrowedFd<'_>) -> Result<(), UpgradeError> {
    let io = |e: rustix::io::Errno| UpgradeError::Io("inspecting a received socket", e.into());
    let domain = sockopt::socket_domain(fd).map_err(io)?;
    let kind = sockopt::socket_type(fd).map_err(io)?;
    let listening = sockopt::socket_acceptconn(fd).map_err(io)?;
    let domain_fits = match role {
        SocketRole::Client | SocketRole::Metrics => {
            domain == AddressFamily::INET || domain == AddressFamily::INET6
        }
        SocketRole::Control => domain == AddressFamily::UNIX,
    };
    if domain_fits && kind == SocketType::STREAM && listening {
        return Ok(());
    }
    let wanted = match role {
        SocketRole::Client | SocketRole::Metrics => "a listening TCP socket",
        SocketRole::Control => "a listening unix stream socket",
    };
    Err(UpgradeError::Protocol(format!(
        "the {role} socket is not {wanted}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> Result<Option<Vec<SocketRole>>, String> {
        parse_header(text.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn header_round_trips_with_repeated_roles_in_order() {
        use SocketRole::*;
        let roles = [Client, Client, Client, Metrics, Control];
        let bytes = encode_header(&roles);
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "goaround-upgrade 1\nsockets 5\nclient\nclient\nclient\nmetrics\ncontrol\n\n"
        );
        assert_eq!(parse_header(&bytes).unwrap(), Some(roles.to_vec()));
        assert_eq!(parse_header(&encode_header(&[])).unwrap(), Some(vec![]));
    }

    #[test]
    fn header_is_incomplete_until_its_blank_line() {
        let bytes = encode_header(&[SocketRole::Metrics]);
        for cut in 0..bytes.len() {
            assert_eq!(parse_header(&bytes[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn bad_headers_are_protocol_errors() {
        let cases = [
            ("HTTP/1.1 200 OK\n\n", "not an upgrade header"),
            (
                "goaround-upgrade 2\nsockets 0\n\n",
                "protocol version \"2\"",
            ),
            ("goaround-upgrade 1\n\n", "no 'sockets N' line"),
            ("goaround-upgrade 1\nsockets x\n\n", "no 'sockets N' line"),
            (
                "goaround-upgrade 1\nsockets 1\nadmin\n\n",
                "unknown role \"admin\"",
            ),
            (
                "goaround-upgrade 1\nsockets 2\nclient\n\n",
                "announces 2 sockets and names 1",
            ),
            (
                "goaround-upgrade 1\nsockets 0\n\nextra",
                "bytes after the header",
            ),
        ];
        for (text, expected) in cases {
            let err = header(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let endless = "x".repeat(MAX_HEADER + 1);
        assert!(header(&endless).unwrap_err().contains("longer than"));
    }

    #[test]
    fn answers_round_trip_and_stay_one_line() {
        for answer in [Answer::Ready(4242), Answer::Error("bad flag -x".into())] {
            assert_eq!(parse_answer(&encode_answer(&answer)).unwrap(), Some(answer));
        }
        let multi = encode_answer(&Answer::Error("line one\nline two".into()));
        assert_eq!(
            parse_answer(&multi).unwrap(),
            Some(Answer::Error("line one line two".into()))
        );
        assert_eq!(parse_answer(b"ready 12").unwrap(), None);
        for bad in [&b"ready\n"[..], b"ready x\n", b"READY 1\n", b"\n"] {
            assert!(
                parse_answer(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_answer(&[b'x'; MAX_ANSWER + 1]).is_err());
    }
}
