//! The check: every acknowledged put was covered by an fsync of its journal.
//!
//! For each put (found by a marker its value carries, and by the client
//! port of the connection it was sent on) the trace must hold, in order:
//!
//! 1. `J`: the first successful write to a fjall journal (a `.jnl` file
//!    under the data directory) whose data contains the put's marker;
//! 2. `S`: a successful `fdatasync` or `fsync` of that same journal file
//!    that *started* after `J` returned (a sync already running when the
//!    bytes arrived need not cover them);
//! 3. `R`: the first send of the HTTP response on the put's connection
//!    (a write to the TCP socket whose peer is the client's port), which
//!    must start only after `S` returned.
//!
//! Times are strace's own (it stops each thread at entry and exit, so a
//! thread woken by another's return is seen after that return); equal
//! microseconds count as "after". Each way this can fail is a
//! [`Violation`]. Pure: parsed calls in, violations out.

use super::strace::Syscall;

/// One put the client made and got a 2xx for.
#[derive(Debug, Clone)]
pub struct Put {
    /// A string only this put's value contains.
    pub marker: String,
    /// The client's port on the connection the put used.
    pub client_port: u16,
}

/// How one put broke the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// No journal write carries the put's marker.
    NoJournalWrite { marker: String },
    /// The node sent nothing on the put's connection.
    NoResponse { marker: String },
    /// The response went out before the journal write returned.
    AckedBeforeJournalWrite { marker: String },
    /// No sync of `journal` ran wholly between the write and the response.
    AckedBeforeSync {
        marker: String,
        journal: String,
        written_us: u64,
        acked_us: u64,
    },
}

/// Checks every put in `puts` against `calls` for the node whose data
/// directory is `data_dir` and whose HTTP port is `http_port`.
pub fn check(calls: &[Syscall], puts: &[Put], data_dir: &str, http_port: u16) -> Vec<Violation> {
    let journal = |c: &&Syscall| c.ok && is_journal(&c.fd_target, data_dir);
    let writes: Vec<&Syscall> = calls
        .iter()
        .filter(journal)
        .filter(|c| matches!(c.name.as_str(), "write" | "writev" | "pwrite64"))
        .collect();
    let syncs: Vec<&Syscall> = calls
        .iter()
        .filter(journal)
        .filter(|c| matches!(c.name.as_str(), "fdatasync" | "fsync"))
        .collect();
    puts.iter()
        .filter_map(|put| check_put(put, &writes, &syncs, calls, http_port))
        .collect()
}

fn check_put(
    put: &Put,
    writes: &[&Syscall],
    syncs: &[&Syscall],
    calls: &[Syscall],
    http_port: u16,
) -> Option<Violation> {
    let marker = put.marker.clone();
    let Some(write) = writes
        .iter()
        .filter(|w| w.rest.contains(&put.marker))
        .min_by_key(|w| w.start_us)
    else {
        return Some(Violation::NoJournalWrite { marker });
    };
    let Some(response) = calls
        .iter()
        .filter(|c| c.ok && c.tcp_ports() == Some((http_port, put.client_port)))
        .filter(|c| matches!(c.name.as_str(), "write" | "writev" | "sendto" | "sendmsg"))
        .min_by_key(|c| c.start_us)
    else {
        return Some(Violation::NoResponse { marker });
    };
    if response.start_us < write.end_us {
        return Some(Violation::AckedBeforeJournalWrite { marker });
    }
    let covered = syncs.iter().any(|s| {
        s.fd_target == write.fd_target
            && s.start_us >= write.end_us
            && s.end_us <= response.start_us
    });
    (!covered).then(|| Violation::AckedBeforeSync {
        marker,
        journal: write.fd_target.clone(),
        written_us: write.end_us,
        acked_us: response.start_us,
    })
}

/// A fjall journal (`<id>.jnl`) directly or deeper under `data_dir`.
fn is_journal(path: &str, data_dir: &str) -> bool {
    let data_dir = data_dir.trim_end_matches('/');
    path.strip_prefix(data_dir)
        .is_some_and(|rest| rest.starts_with('/') && rest.ends_with(".jnl"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsync_trace::strace::parse;

    const DIR: &str = "/d/n1";
    const HTTP: u16 = 8080;

    fn put(n: u16) -> Put {
        Put {
            marker: format!("probe-{n}"),
            client_port: 50_000 + n,
        }
    }

    /// A trace line at `at_us` (microseconds into the second) lasting `us`.
    fn line(tid: u32, at_us: u32, call: &str, us: u32) -> String {
        format!("{tid} 1700000000.{at_us:06} {call} <0.{us:06}>\n")
    }

    fn journal_write(at_us: u32, n: u16) -> String {
        line(
            1,
            at_us,
            &format!("write(9</d/n1/0.jnl>, \"\\x01probe-{n}\\x00\", 20) = 20"),
            10,
        )
    }

    fn sync(at_us: u32, file: &str, us: u32) -> String {
        line(2, at_us, &format!("fdatasync(10</d/n1/{file}>) = 0"), us)
    }

    fn respond(at_us: u32, n: u16) -> String {
        let port = 50_000 + n;
        line(
            3,
            at_us,
            &format!("writev(7<TCP:[127.0.0.1:8080->127.0.0.1:{port}]>, [{{iov_base=\"HTTP/1.1 204 No Content\\r\\n\", iov_len=25}}], 1) = 25"),
            5,
        )
    }

    fn violations(trace: &str, puts: &[Put]) -> Vec<Violation> {
        check(&parse(trace), puts, DIR, HTTP)
    }

    #[test]
    fn writes_each_synced_before_their_ack_pass() {
        // Put 1 alone; puts 2 and 3 share one group-commit sync.
        let trace = [
            journal_write(100, 1),
            sync(200, "0.jnl", 300),
            respond(600, 1),
            journal_write(700, 2),
            journal_write(720, 3),
            sync(800, "0.jnl", 100),
            respond(950, 3),
            respond(960, 2),
        ]
        .concat();
        assert_eq!(violations(&trace, &[put(1), put(2), put(3)]), []);
    }

    #[test]
    fn an_ack_with_no_sync_at_all_is_reported() {
        let trace = [journal_write(100, 1), respond(300, 1)].concat();
        assert_eq!(
            violations(&trace, &[put(1)]),
            [Violation::AckedBeforeSync {
                marker: "probe-1".into(),
                journal: "/d/n1/0.jnl".into(),
                written_us: 1_700_000_000_000_110,
                acked_us: 1_700_000_000_000_300,
            }]
        );
    }

    #[test]
    fn a_sync_that_ends_after_the_ack_or_started_before_the_write_does_not_count() {
        let after_ack = [
            journal_write(100, 1),
            respond(300, 1),
            sync(400, "0.jnl", 50),
        ]
        .concat();
        let still_running = [
            journal_write(100, 1),
            sync(300, "0.jnl", 500),
            respond(600, 1),
        ]
        .concat();
        let started_before = [
            sync(50, "0.jnl", 100),
            journal_write(100, 1),
            respond(300, 1),
        ]
        .concat();
        for trace in [after_ack, still_running, started_before] {
            let found = violations(&trace, &[put(1)]);
            assert!(
                matches!(found.as_slice(), [Violation::AckedBeforeSync { .. }]),
                "{trace}\n{found:?}"
            );
        }
    }

    #[test]
    fn a_sync_of_another_file_or_a_failed_sync_does_not_count() {
        let other_journal = [
            journal_write(100, 1),
            sync(200, "1.jnl", 10),
            respond(300, 1),
        ]
        .concat();
        let failed = [
            journal_write(100, 1),
            line(
                2,
                200,
                "fdatasync(10</d/n1/0.jnl>) = -1 EIO (Input/output error)",
                10,
            ),
            respond(300, 1),
        ]
        .concat();
        for trace in [other_journal, failed] {
            assert!(matches!(
                violations(&trace, &[put(1)]).as_slice(),
                [Violation::AckedBeforeSync { .. }]
            ));
        }
    }

    #[test]
    fn missing_writes_missing_responses_and_early_acks_are_reported() {
        let no_write = [sync(200, "0.jnl", 10), respond(300, 1)].concat();
        assert_eq!(
            violations(&no_write, &[put(1)]),
            [Violation::NoJournalWrite {
                marker: "probe-1".into()
            }]
        );
        let no_response = [
            journal_write(100, 1),
            sync(200, "0.jnl", 10),
            respond(300, 2),
        ]
        .concat();
        assert_eq!(
            violations(&no_response, &[put(1)]),
            [Violation::NoResponse {
                marker: "probe-1".into()
            }]
        );
        let early = [
            respond(50, 1),
            journal_write(100, 1),
            sync(200, "0.jnl", 10),
        ]
        .concat();
        assert_eq!(
            violations(&early, &[put(1)]),
            [Violation::AckedBeforeJournalWrite {
                marker: "probe-1".into()
            }]
        );
    }

    #[test]
    fn only_journals_under_the_data_dir_count() {
        for (path, want) in [
            ("/d/n1/0.jnl", true),
            ("/d/n1/sub/12.jnl", true),
            ("/d/n10/0.jnl", false),
            ("/d/n1/0.jnl.tmp", false),
            ("/elsewhere/0.jnl", false),
        ] {
            assert_eq!(is_journal(path, DIR), want, "{path}");
        }
    }
}
