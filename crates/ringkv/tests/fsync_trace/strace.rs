//! Parsing `strace -f -ttt -T -yy -s N` output into [`Syscall`]s.
//!
//! Each line is `PID SECONDS.MICROS name(args) = RET <DURATION>`. A call
//! another thread interrupted is split over two lines, `... <unfinished ...>`
//! and later `PID SECONDS.MICROS <... name resumed>rest`; the two halves
//! are joined and the call is dated by its first half. Signal (`---`) and
//! exit (`+++`) lines are skipped, as is anything else that does not parse:
//! the checker only ever needs the calls it can read, and a call it cannot
//! read can only make it report a missing sync, never hide one.
//!
//! `-yy` annotates each descriptor with what it is: `9</data/n1/0.jnl>` for
//! a file, `7<TCP:[127.0.0.1:8080->127.0.0.1:50312]>` for a TCP socket
//! (local, then peer). Pure: text in, values out; no IO.

use std::collections::BTreeMap;

/// One finished system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syscall {
    /// The thread that made it.
    pub tid: u32,
    /// When strace saw it enter, in microseconds since the epoch.
    pub start_us: u64,
    /// When it returned (`start_us` plus strace's `-T` duration).
    pub end_us: u64,
    pub name: String,
    /// What `-yy` says the first argument's descriptor is ("" if none).
    pub fd_target: String,
    /// The rest of the arguments as strace printed them (escaped data).
    pub rest: String,
    /// The return value was not an error (`>= 0`).
    pub ok: bool,
}

impl Syscall {
    /// `(local port, peer port)` when the descriptor is a TCP socket.
    pub fn tcp_ports(&self) -> Option<(u16, u16)> {
        let inner = self.fd_target.strip_prefix("TCP")?;
        let inner = inner.split_once(":[")?.1.strip_suffix(']')?;
        let (local, peer) = inner.split_once("->")?;
        let port = |end: &str| end.rsplit_once(':')?.1.parse().ok();
        Some((port(local)?, port(peer)?))
    }
}

/// Parses a whole trace; see the module doc.
pub fn parse(trace: &str) -> Vec<Syscall> {
    let mut unfinished: BTreeMap<u32, (u64, String)> = BTreeMap::new();
    let mut calls = Vec::new();
    for line in trace.lines() {
        let Some((tid, at_us, text)) = split_prefix(line) else {
            continue;
        };
        if let Some(first) = text.strip_suffix("<unfinished ...>") {
            unfinished.insert(tid, (at_us, first.trim_end().to_string()));
            continue;
        }
        let (start_us, whole) = match text.strip_prefix("<... ") {
            Some(resumed) => {
                let Some((_, rest)) = resumed.split_once(" resumed>") else {
                    continue;
                };
                let Some((start, first)) = unfinished.remove(&tid) else {
                    continue;
                };
                (start, format!("{first}{rest}"))
            }
            None => (at_us, text.to_string()),
        };
        if let Some(call) = parse_call(tid, start_us, &whole) {
            calls.push(call);
        }
    }
    calls
}

/// `PID SECONDS.MICROS rest` → (pid, microseconds, rest). strace pads the
/// pid column to a fixed width, so fields may be separated by more than one
/// space.
fn split_prefix(line: &str) -> Option<(u32, u64, &str)> {
    let (tid, rest) = line.trim_start().split_once(' ')?;
    let (at, text) = rest.trim_start().split_once(' ')?;
    Some((tid.parse().ok()?, micros(at)?, text))
}

/// `"12.000345"` → 12_000_345.
fn micros(seconds: &str) -> Option<u64> {
    let (whole, frac) = seconds.split_once('.')?;
    if frac.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_us: u64 = format!("{frac:0<6}").parse().ok()?;
    whole
        .parse::<u64>()
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(frac_us)
}

/// `name(args) = RET <DURATION>` → a [`Syscall`].
fn parse_call(tid: u32, start_us: u64, text: &str) -> Option<Syscall> {
    let (head, duration) = text.trim_end().strip_suffix('>')?.rsplit_once(" <")?;
    let (name, after) = head.split_once('(')?;
    let (args, ret) = after.rsplit_once(") = ")?;
    let ok = ret
        .split_whitespace()
        .next()?
        .parse::<i64>()
        .is_ok_and(|r| r >= 0);
    let (fd_target, rest) = split_fd(args);
    Some(Syscall {
        tid,
        start_us,
        end_us: start_us.checked_add(micros(duration)?)?,
        name: name.to_string(),
        fd_target: fd_target.to_string(),
        rest: rest.to_string(),
        ok,
    })
}

/// `9</path>, more` → ("/path", "more"); `9</path>` → ("/path", "").
fn split_fd(args: &str) -> (&str, &str) {
    let Some((fd, annotated)) = args.split_once('<') else {
        return ("", args);
    };
    if !fd.bytes().all(|b| b.is_ascii_digit()) {
        return ("", args);
    }
    match annotated.split_once(">, ") {
        Some((target, rest)) => (target, rest),
        None => (annotated.strip_suffix('>').unwrap_or(annotated), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_calls_parse_with_fd_targets_and_durations() {
        let trace = "\
101 1700000000.000100 write(9</d/n1/0.jnl>, \"\\x01item-probe-1\", 40) = 40 <0.000020>
102 1700000000.000200 fdatasync(10</d/n1/0.jnl>) = 0 <0.001500>
103 1700000000.002000 writev(7<TCP:[127.0.0.1:8080->127.0.0.1:50312]>, [{iov_base=\"HTTP/1.1 204 No Content\\r\\n\", iov_len=25}], 1) = 25 <0.000010>
104 1700000000.003000 fsync(11</d/n1/1.jnl>) = -1 EIO (Input/output error) <0.000001>
--- SIGCHLD {si_signo=SIGCHLD} ---
104 1700000000.004000 +++ exited with 0 +++
garbage line
";
        let calls = parse(trace);
        assert_eq!(calls.len(), 4, "{calls:?}");
        assert_eq!(calls[0].name, "write");
        assert_eq!(calls[0].fd_target, "/d/n1/0.jnl");
        assert!(calls[0].rest.contains("item-probe-1"));
        assert_eq!(
            (calls[0].start_us, calls[0].end_us),
            (1_700_000_000_000_100, 1_700_000_000_000_120)
        );
        assert_eq!(calls[1].end_us - calls[1].start_us, 1_500);
        assert_eq!(calls[2].tcp_ports(), Some((8080, 50312)));
        assert!(calls[2].rest.contains("HTTP/1.1 204"));
        assert!(calls[2].ok);
        assert!(!calls[3].ok, "an error return is not a sync");
        assert_eq!(calls[0].tcp_ports(), None);
    }

    #[test]
    fn an_interrupted_call_is_joined_and_dated_by_its_start() {
        let trace = "\
201 1700000000.000100 fdatasync(10</d/n1/0.jnl> <unfinished ...>
202 1700000000.000150 write(9</d/n1/0.jnl>, \"x\", 1) = 1 <0.000005>
201 1700000000.000900 <... fdatasync resumed>) = 0 <0.000800>
203 1700000000.000950 <... write resumed>) = 1 <0.000001>
";
        let calls = parse(trace);
        assert_eq!(
            calls.len(),
            2,
            "a resumption without its start is dropped: {calls:?}"
        );
        let sync = calls.iter().find(|c| c.name == "fdatasync").unwrap();
        assert_eq!(sync.fd_target, "/d/n1/0.jnl");
        assert_eq!(
            (sync.start_us, sync.end_us),
            (1_700_000_000_000_100, 1_700_000_000_000_900)
        );
        assert!(sync.ok);
    }

    #[test]
    fn a_padded_pid_column_parses() {
        let calls = parse("5918  1796192836.529100 fdatasync(3</d/0.jnl>) = 0 <0.000031>\n");
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(
            (calls[0].tid, calls[0].start_us),
            (5918, 1_796_192_836_529_100)
        );
    }

    #[test]
    fn timestamps_parse_exactly_or_not_at_all() {
        assert_eq!(micros("1.5"), Some(1_500_000));
        assert_eq!(micros("0.000001"), Some(1));
        for bad in ["1", "1.", "1.1234567", "x.1", "1.x", "-1.0"] {
            assert_eq!(micros(bad), None, "{bad}");
        }
        assert_eq!(split_fd("3</a>, b"), ("/a", "b"));
        assert_eq!(split_fd("AT_FDCWD, \"<x>\""), ("", "AT_FDCWD, \"<x>\""));
    }
}
